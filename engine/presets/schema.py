"""Presets: what a performer saves and sends a friend (model, mode, sampling, injection,
conditioning, limits, timing) as frozen dataclasses, built and checked from TOML-shaped tables,
merged with overrides and written back as TOML. The files themselves: `engine.presets.files`;
what the engine makes of them: `engine.duet.settings`."""
from __future__ import annotations

import copy
import difflib
import enum
import math
import os
import re
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from engine.model.adapters import find_style, style_names
from engine.model.config import DEFAULT_MODEL_DIR
from engine.tokens.conditions import GENRES, KEYS
from engine.user_dirs import styles_dir


class Mode(enum.StrEnum):
    """How the AI plays along: answering the performer's phrases in turns, under them, or on
    and on. Equal to its TOML string, which is what a `Preset` keeps."""

    CALL_AND_RESPONSE = "call-and-response"
    ACCOMPANY = "accompany"
    CONTINUOUS = "continuous"


MODES = tuple(m.value for m in Mode)  # the strings a preset file may say
class Strategy(enum.StrEnum):
    """How the performer's notes reach the model (a preset ticks one or more)."""

    INTERLEAVE = "interleave"  # as played, in time order
    HARMONIC = "harmonic"  # the chords and key he implies
    VELOCITY = "velocity"  # how hard he plays


class HandoverKind(enum.StrEnum):
    NOTE = "note"  # a key hands the turn over
    CC = "cc"  # a pedal or knob does


STRATEGIES = tuple(s.value for s in Strategy)
HANDOVER_KINDS = tuple(k.value for k in HandoverKind)
NONE = "none"  # TOML has no null: this string means "not given" in any optional field
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_ACTION_RE = re.compile(r"[a-z][a-z0-9_]*")


class PresetError(Exception):
    """A preset that cannot be used; the message is one line: the file, the dotted key, the reason."""

    def __init__(self, source: str | os.PathLike, key: str | None, problem: str) -> None:
        self.source, self.key = source, key
        self.problem = " ".join(str(problem).split())  # one line, whatever an inner error printed
        where = f"preset {source}" if isinstance(source, os.PathLike) else str(source)
        super().__init__(f"{where}: {key}: {self.problem}" if key else f"{where}: {self.problem}")

    def __reduce__(self):  # picklable across processes (the music bench) despite the three-argument init
        return type(self), (self.source, self.key, self.problem)


def _range(lo: float, hi: float, default: Any = MISSING) -> Any:
    return field(default=default, metadata={"range": (lo, hi)})


def _choice(choices: tuple[str, ...], default: Any = MISSING) -> Any:
    return field(default=default, metadata={"choices": choices})


def _paths() -> Any:
    return field(default=(), metadata={"may_be_empty": True})


@dataclass(frozen=True)
class AdapterRef:
    path: str  # a LoRA adapter directory (safetensors), relative to the preset file, or a style's name
    weight: float = _range(0.0, 2.0, 1.0)


@dataclass(frozen=True)
class ModelRef:
    path: str = "default"  # "default" = the shipped model; else a checkpoint directory
    adapters: tuple[AdapterRef, ...] = ()
    # MIDI phrases, relative to the preset file, read as the AI's own playing at the start of the
    # model's context (style by example, no training): `resolve_prime`, `engine.duet.prime`.
    prime: tuple[str, ...] = _paths()
    prime_s: float = _range(1.0, 30.0, 8.0)  # at most this many seconds of them


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = _range(0.0, 5.0, 0.95)
    top_k: int = _range(0, 100_000, 0)
    top_p: float = _range(0.01, 1.0, 0.95)
    repetition_penalty: float = _range(0.5, 3.0, 1.05)
    no_repeat_ngram: int = _range(0, 64, 0)


@dataclass(frozen=True)
class InjectionSettingsRef:
    strategy: tuple[str, ...] = _choice(STRATEGIES, ("interleave", "velocity"))
    respond_imitate: float = _range(0.0, 1.0, 0.3)  # 0 = answer freely, 1 = echo the performer's ideas
    input_delay_s: float = _range(0.0, 2.0, 0.0)
    anti_echo: bool = True
    scale_bias: float = _range(0.0, 1.0, 0.8)  # share of the AI's notes kept in the key the performer plays in


@dataclass(frozen=True)
class ConditioningSettings:
    genre: str | None = _choice(GENRES, "jazz-comping")
    tempo_bpm: float | None = _range(20.0, 300.0, None)
    key: str | None = _choice(KEYS, None)
    density_nps: float | None = _range(0.0, 30.0, None)
    guidance_weight: float = _range(1.0, 10.0, 1.0)  # 1 = off (guidance costs a second decode)


@dataclass(frozen=True)
class Limits:
    low_pitch: int = _range(0, 127, 21)
    high_pitch: int = _range(0, 127, 108)
    min_velocity: int = _range(1, 127, 1)
    max_velocity: int = _range(1, 127, 127)
    max_polyphony: int = _range(1, 32, 8)


@dataclass(frozen=True)
class Handover:
    kind: str = _choice(HANDOVER_KINDS)  # "note": that key hands the turn over; "cc": that controller
    number: int = _range(0, 127)


@dataclass(frozen=True)
class Preset:
    name: str = "default"
    description: str = "Jazz piano: the shipped model answers your phrases with comping-flavoured lines."
    mode: str = _choice(MODES, Mode.CALL_AND_RESPONSE.value)
    context_s: float = _range(2.0, 30.0, 10.0)
    lookahead_s: float = _range(0.05, 10.0, 1.0)
    commit_window_s: float = _range(0.0, 5.0, 0.25)
    phrase_gap_s: float = _range(0.1, 10.0, 0.8)
    handover: Handover | None = None
    model: ModelRef = field(default_factory=ModelRef)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    injection: InjectionSettingsRef = field(default_factory=InjectionSettingsRef)
    conditioning: ConditioningSettings = field(default_factory=ConditioningSettings)
    limits: Limits = field(default_factory=Limits)
    output_offset_ms: dict[str, float] = field(default_factory=dict, metadata={"range": (-1000.0, 1000.0)})
    hotkeys: dict[str, str] = field(default_factory=dict)  # action id -> key, e.g. panic = "escape"
    # The file it was read from: relative model and adapter paths are resolved against it.
    source: Path | None = field(default=None, compare=False, metadata={"internal": True})


def _join(prefix: str, key: str) -> str:
    key = key if _BARE_KEY_RE.fullmatch(key) else _toml_str(key)
    return f"{prefix}.{key}" if prefix else key


def _describe(raw: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}
    shown = "" if isinstance(raw, (list, dict)) else " " + repr(raw)[:40]
    return kind.get(type(raw), type(raw).__name__) + shown


def _suggest(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build(cls: type, table: Any, where: Any, prefix: str) -> Any:
    if not isinstance(table, dict):
        raise PresetError(where, prefix or None, f"expected a table, got {_describe(table)}")
    hints = typing.get_type_hints(cls)
    known = [f for f in fields(cls) if not f.metadata.get("internal")]
    names = [f.name for f in known]
    for key in table:
        if key not in names:
            raise PresetError(where, _join(prefix, key), "unknown key" + _suggest(key, names))
    values = {}
    for f in known:
        if f.name in table:
            values[f.name] = _value(hints[f.name], table[f.name], f.metadata, where, _join(prefix, f.name))
        elif f.default is MISSING and f.default_factory is MISSING:
            raise PresetError(where, _join(prefix, f.name), "missing (required)")
    return cls(**values)


def _value(tp: Any, raw: Any, meta: Any, where: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):  # X | None
        return None if raw == NONE else _value(args[0], raw, meta, where, key)
    if is_dataclass(tp):
        if tp is ModelRef and isinstance(raw, str):  # model = "path" is short for [model] path = "path"
            raw = {"path": raw}
        return _build(tp, raw, where, key)
    if origin is tuple and is_dataclass(args[0]):
        if not isinstance(raw, list):
            raise PresetError(where, key, f"expected an array of tables, got {_describe(raw)}")
        return tuple(_build(args[0], item, where, f"{key}[{i}]") for i, item in enumerate(raw))
    if origin is tuple:  # a string, or a list of them
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not (items or meta.get("may_be_empty")):
            wanted = "a list of strings" if meta.get("may_be_empty") else "a non-empty list of strings"
            raise PresetError(where, key, f"expected a string or {wanted}, got {_describe(raw)}")
        values = tuple(_scalar(args[0], item, meta, where, key) for item in items)
        if len(set(values)) != len(values):
            raise PresetError(where, key, f"lists {values} with a repeat")
        return values
    if origin is dict:
        if not isinstance(raw, dict):
            raise PresetError(where, key, f"expected a table, got {_describe(raw)}")
        return {k: _scalar(args[1], v, meta, where, _join(key, k)) for k, v in raw.items()}
    return _scalar(tp, raw, meta, where, key)


def _scalar(tp: type, raw: Any, meta: Any, where: Any, key: str) -> Any:
    if tp is bool and not isinstance(raw, bool):
        raise PresetError(where, key, f"expected true or false, got {_describe(raw)}")
    if tp is int and (isinstance(raw, bool) or not isinstance(raw, int)):
        raise PresetError(where, key, f"expected a whole number, got {_describe(raw)}")
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise PresetError(where, key, f"expected a number, got {_describe(raw)}")
        raw = float(raw)
    if tp is str and not isinstance(raw, str):
        raise PresetError(where, key, f"expected a string, got {_describe(raw)}")
    if "range" in meta and not meta["range"][0] <= raw <= meta["range"][1]:
        lo, hi = meta["range"]
        raise PresetError(where, key, f"must be between {lo:g} and {hi:g}, got {raw:g}")
    if "choices" in meta and raw not in meta["choices"]:
        raise PresetError(where, key, f"must be one of {', '.join(meta['choices'])}; got {raw!r}"
                          + _suggest(raw, meta["choices"]))
    return raw


def _check(preset: Preset, where: Any) -> Preset:
    """What one field alone cannot say."""
    for low, high in (("low_pitch", "high_pitch"), ("min_velocity", "max_velocity")):
        if getattr(preset.limits, high) < getattr(preset.limits, low):
            raise PresetError(where, f"limits.{high}",
                              f"{getattr(preset.limits, high)} is below limits.{low} {getattr(preset.limits, low)}")
    if not preset.name.strip():
        raise PresetError(where, "name", "is empty")
    for port in preset.output_offset_ms:
        if not port.strip():
            raise PresetError(where, "output_offset_ms", "has an empty port name")
    actions_by_key: dict[str, str] = {}
    for action, key in preset.hotkeys.items():
        if not _ACTION_RE.fullmatch(action):
            raise PresetError(where, _join("hotkeys", action), "is not an action id (like start_stop or panic)")
        if not key or any(ch.isspace() for ch in key):
            raise PresetError(where, _join("hotkeys", action), f"{key!r} is not a key name (like 'p', 'ctrl+r', 'f5')")
        if key in actions_by_key:
            raise PresetError(where, _join("hotkeys", action), f"{key!r} is also bound to {actions_by_key[key]}")
        actions_by_key[key] = action
    return preset


def preset_from_table(table: dict[str, Any], where: Any, source: Path | None) -> Preset:
    """A checked preset from a TOML-shaped table; errors name `where` (a file or an origin)."""
    return _check(replace(_build(Preset, table, where, ""), source=source), where)


def _resolve(preset: Preset, raw: str, key: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (preset.source.parent if preset.source else Path.cwd()) / path
    if not path.exists():
        raise PresetError(preset.source or f"preset {preset.name!r}", key, f"no such file or directory: {path}")
    return path


def resolve_model_path(preset: Preset) -> Path:
    """The checkpoint directory the preset names (checked to exist; the checkpoint loader checks the rest)."""
    if preset.model.path == "default":
        return DEFAULT_MODEL_DIR
    return _resolve(preset, preset.model.path, "model.path")


def resolve_adapters(preset: Preset) -> list[tuple[Path, float]]:
    """(adapter directory, weight) for each adapter, in order. A `path` is a directory (relative
    to the preset file) or, a bare name with no directory of that name there, a trained style
    (`engine.user_dirs.styles_dir()/NAME`)."""
    return [(_resolve_adapter(preset, a.path, f"model.adapters[{i}].path"), a.weight)
            for i, a in enumerate(preset.model.adapters)]


def resolve_prime(preset: Preset) -> list[Path]:
    """The MIDI files of the preset's prime phrases, in order, relative to the preset file (checked
    to exist; `engine.duet.prime` reads them)."""
    return [_resolve(preset, raw, f"model.prime[{i}]") for i, raw in enumerate(preset.model.prime)]


def _resolve_adapter(preset: Preset, raw: str, key: str) -> Path:
    base = preset.source.parent if preset.source else Path.cwd()
    if "/" in raw or os.sep in raw or raw.startswith("~") or (base / raw).is_dir():
        return _resolve(preset, raw, key)
    style = find_style(raw)
    if style is None:
        known = ", ".join(style_names()) or f"none yet in {styles_dir()}"
        raise PresetError(preset.source or f"preset {preset.name!r}", key,
                          f"no style or directory named {raw!r} (known styles: {known})")
    return style


def preset_to_dict(preset: Any) -> Any:
    """The TOML-shaped value of a preset or a part of one (None becomes "none")."""
    if preset is None:
        return NONE
    if is_dataclass(preset):
        return {f.name: preset_to_dict(getattr(preset, f.name)) for f in fields(preset)
                if not f.metadata.get("internal")}
    if isinstance(preset, (tuple, list)):
        return [preset_to_dict(v) for v in preset]
    if isinstance(preset, dict):
        return {k: preset_to_dict(v) for k, v in preset.items()}
    return preset


def _deep_merge(target: dict[str, Any], overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if value is None:  # a flag not given
            continue
        head, _, rest = key.partition(".")
        if rest:  # "sampling.temperature": 0.8 is {"sampling": {"temperature": 0.8}}
            key, value = head, {rest: value}
        if isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            _deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def merge(base: Preset, overrides: dict[str, Any], *, origin: str = "command line") -> Preset:
    """`base` with `overrides` on top: nested tables or dotted keys ({"sampling.temperature": 0.8}).

    None values are skipped (flags not given); "none" clears an optional field. Model and adapter
    paths in `overrides` resolve against `base.source` like the preset's own, so a caller with paths
    relative to the working directory makes them absolute first. Errors name `origin`.
    """
    table = preset_to_dict(base)
    _deep_merge(table, overrides)
    return preset_from_table(table, origin, base.source)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_str(text: str) -> str:
    out = (_ESCAPES.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch) for ch in text)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def _write_table(lines: list[str], prefix: str, table: dict[str, Any]) -> None:
    later = []
    for key, value in table.items():
        if isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
            later.append((key, value))
        else:
            lines.append(f"{_join('', key)} = {_toml_value(value)}")
    for key, value in later:
        dotted = _join(prefix, key)
        for item in [value] if isinstance(value, dict) else value:
            lines += ["", f"[{dotted}]" if isinstance(value, dict) else f"[[{dotted}]]"]
            _write_table(lines, dotted, item)


def dump_preset(preset: Preset) -> str:
    """The preset as TOML text that `load_preset` reads back to an equal preset."""
    lines = [f'# jamtui preset; keys left out take the defaults. Optional fields take "{NONE}".']
    _write_table(lines, "", preset_to_dict(preset))
    return "\n".join(lines) + "\n"
