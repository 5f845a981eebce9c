"""Preset files (TOML): found by name among the user's presets (in their config directory), then
the shipped ones; loaded, listed and saved. Loading one never runs code. What a preset holds:
`engine.presets.schema`."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from engine.presets.schema import Preset, PresetError, dump_preset, preset_from_table

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "presets"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class PresetInfo(NamedTuple):
    name: str
    source: str  # "user" or "shipped"
    path: Path
    description: str


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise PresetError(path, None, "is not UTF-8 text") from None
    except OSError as exc:
        raise PresetError(path, None, (exc.strerror or str(exc)).lower()) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(path, None, f"TOML syntax error: {exc}") from None


def user_preset_dir() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("jamtui")) / "presets"


def find_preset(path_or_name: str | os.PathLike, *, user_dir: Path | None = None) -> Path:
    """The file of a preset: a path as given, or a name looked up in the user's presets, then the shipped ones."""
    text = os.fspath(path_or_name)
    if isinstance(path_or_name, os.PathLike) or "/" in text or os.sep in text or text.endswith(".toml"):
        return Path(text).expanduser()
    user_dir = user_preset_dir() if user_dir is None else user_dir
    for directory in (user_dir, SHIPPED_DIR):
        if (directory / f"{text}.toml").is_file():
            return directory / f"{text}.toml"
    names = ", ".join(info.name for info in list_presets(user_dir=user_dir)) or "none"
    raise PresetError(f"preset {text!r}", None, f"not found in {user_dir} nor among the shipped presets ({names})")


def load_preset(path_or_name: str | os.PathLike, *, user_dir: Path | None = None) -> Preset:
    """A preset by file path or by name (a user preset shadows a shipped one of the same name).

    Keys the file leaves out take the defaults; a missing `name` is the file's stem.
    """
    path = find_preset(path_or_name, user_dir=user_dir)
    table = _read_toml(path)
    table.setdefault("name", path.stem)
    return preset_from_table(table, path, path.resolve())


def list_presets(*, user_dir: Path | None = None) -> list[PresetInfo]:
    """Every preset a name would load, sorted by name; a broken file is listed with its problem."""
    found: dict[str, PresetInfo] = {}
    for source, directory in (("user", user_preset_dir() if user_dir is None else user_dir), ("shipped", SHIPPED_DIR)):
        for path in sorted(directory.glob("*.toml")) if directory.is_dir() else ():
            if path.stem not in found:
                try:
                    description = load_preset(path).description
                except PresetError as exc:
                    description = f"(invalid: {exc.problem})"
                found[path.stem] = PresetInfo(path.stem, source, path, description)
    return sorted(found.values(), key=lambda info: info.name)


def save_user_preset(preset: Preset, name: str, *, overwrite: bool = False, user_dir: Path | None = None) -> Path:
    """Write `preset` as the user preset `name`; an existing one is replaced only with `overwrite`,
    atomically, the old file kept as NAME.toml.bak."""
    if not _NAME_RE.fullmatch(name):
        raise PresetError(f"preset name {name!r}", None, "use letters, digits, '-' and '_' only")
    directory = user_preset_dir() if user_dir is None else user_dir
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dump_preset(replace(preset, name=name)))
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            if path.exists():
                shutil.copy2(path, path.with_name(path.name + ".bak"))
            os.replace(tmp, path)
            return path
        try:
            os.link(tmp, path)  # fails if the name is taken, with no window for a race
        except FileExistsError:
            raise PresetError(path, None, "already exists; not overwriting it") from None
        return path
    finally:
        tmp.unlink(missing_ok=True)
