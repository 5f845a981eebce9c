"""Notes <-> token ids for the duet model: one miditok TSD vocabulary read at a fixed 120 bpm,
a Program token per note for the player, condition tokens up front. Decoding (ids back to
notes, all at once or incrementally) is `engine.tokens.decoder`.

A sequence is `BOS [Genre] [Tempo] [Key] [Density] note...` where a note is
`[TimeShift...] Program Pitch Velocity Duration`. See docs/tokens.md.
"""
from __future__ import annotations

import bisect
import hashlib
import importlib.metadata
import json
import random
from pathlib import Path
from typing import Any, Iterable, Sequence

from miditok import TSD, TokenizerConfig

from engine.tokens.conditions import CONDITION_TOKENS, Conditions, condition_tokens
from engine.events import AI, PERFORMER, Note

REFERENCE_BPM = 120  # free time is read as 120 bpm: one beat is 0.5 s
BEAT_S = 60 / REFERENCE_BPM
# (beat range): positions per beat, for TimeShift and Duration values alike. 48/beat below
# one beat: 10.4 ms ticks; longer values get coarser, up to 16 beats (8 s). Chosen with
# scripts/measure-tokenizer, see docs/tokens.md.
BEAT_RES = {(0, 1): 48, (1, 2): 16, (2, 4): 8, (4, 8): 4, (8, 16): 1}
NUM_VELOCITIES = 32
PITCH_RANGE = (21, 108)  # the 88 piano keys
PLAYERS = (PERFORMER, AI)  # player p is miditok's Program_p
CONFIG_FILE = "jamtui-tokenizer.json"
_FORMAT = "jamtui-tokenizer"
_FORMAT_VERSION = 1

# Token kinds in the id tables.
PAD, BOS, EOS, CONDITION, SHIFT, PROGRAM, PITCH, VELOCITY, DURATION, OTHER = range(10)
_KIND_OF_TYPE = {
    "PAD": PAD, "BOS": BOS, "EOS": EOS, "Genre": CONDITION, "Tempo": CONDITION, "Key": CONDITION,
    "Density": CONDITION, "TimeShift": SHIFT, "Program": PROGRAM, "Pitch": PITCH,
    "Velocity": VELOCITY, "Duration": DURATION,
}  # fmt: skip


class TokenizerConfigError(ValueError):
    """A saved tokenizer config cannot be loaded, or does not give the vocabulary it claims."""


def make_config(
    beat_res: dict[tuple[int, int], int] | None = None,
    num_velocities: int = NUM_VELOCITIES,
    pitch_range: tuple[int, int] = PITCH_RANGE,
) -> TokenizerConfig:
    """The miditok configuration of jamtui: TSD, programs 0/1 in one stream, nothing else."""
    return TokenizerConfig(
        pitch_range=pitch_range,
        beat_res=dict(beat_res or BEAT_RES),
        num_velocities=num_velocities,
        special_tokens=["PAD", "BOS", "EOS", *CONDITION_TOKENS],
        use_velocities=True,
        use_programs=True,
        programs=list(PLAYERS),
        one_token_stream_for_programs=True,
        program_changes=False,
        use_time_signatures=False,
        use_tempos=False,
        use_chords=False,
        use_rests=False,
        use_sustain_pedals=False,  # folded into durations before encoding
        use_pitch_bends=False,
        use_pitchdrum_tokens=False,
        remove_duplicated_notes=True,
    )


class JamTokenizer:
    """Encodes `Note`s (times in seconds) to ids and back. Any thread may call it: after
    construction it changes nothing but a cache of pure results."""

    def __init__(self, config: TokenizerConfig | None = None) -> None:
        self.miditok = TSD(config or make_config())
        cfg = self.miditok.config
        if not (cfg.use_programs and cfg.one_token_stream_for_programs and cfg.use_velocities):
            raise TokenizerConfigError("config must use programs in one stream and velocities")
        self.vocab: tuple[str, ...] = tuple(sorted(self.miditok.vocab, key=self.miditok.vocab.__getitem__))
        self._ids = {token: i for i, token in enumerate(self.vocab)}
        self.ticks_per_beat: int = self.miditok.time_division
        self.tick_s: float = BEAT_S / self.ticks_per_beat
        # Per id: its kind and value (ticks for TimeShift/Duration, else the number).
        tpb_ticks = self.miditok._tpb_tokens_to_ticks[self.ticks_per_beat]
        self._kind = [_KIND_OF_TYPE.get(t.partition("_")[0], OTHER) for t in self.vocab]
        self._value = [
            tpb_ticks[t.partition("_")[2]] if k in (SHIFT, DURATION)
            else int(t.partition("_")[2]) if k in (PROGRAM, PITCH, VELOCITY) else 0
            for t, k in zip(self.vocab, self._kind)
        ]  # fmt: skip
        self._time_ticks = [int(t) for t in self.miditok._tpb_to_time_array[self.ticks_per_beat]]
        self._shift_ids = [self._ids[f"TimeShift_{'.'.join(map(str, d))}"] for d in self.miditok.durations]
        self._duration_ids = [self._ids[f"Duration_{'.'.join(map(str, d))}"] for d in self.miditok.durations]
        self._velocities = [int(v) for v in self.miditok.velocities]
        self._velocity_ids = [self._ids[f"Velocity_{v}"] for v in self._velocities]
        self.pitch_range: tuple[int, int] = tuple(cfg.pitch_range)
        self._pitch_ids = {p: self._ids[f"Pitch_{p}"] for p in range(self.pitch_range[0], self.pitch_range[1] + 1)}
        self._program_ids = {p: self._ids[f"Program_{p}"] for p in PLAYERS}
        self._shift_cache: dict[int, list[int]] = {}
        self.pad_id, self.bos_id, self.eos_id = (self._ids[t] for t in ("PAD_None", "BOS_None", "EOS_None"))
        digest = hashlib.sha256(f"{_FORMAT} {REFERENCE_BPM}\n".encode() + "\n".join(self.vocab).encode())
        self.fingerprint: str = digest.hexdigest()[:16]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def duration_ticks(self) -> tuple[int, ...]:
        """The durations (ticks) one Duration or TimeShift token can say, shortest first: the grid
        note lengths and time shifts snap to."""
        return tuple(self._time_ticks)

    @property
    def max_duration_s(self) -> float:
        return self._time_ticks[-1] * self.tick_s

    def token_id(self, token: str) -> int:
        return self._ids[token]

    def kind(self, token_id: int) -> int:
        """One of PAD, BOS, EOS, CONDITION, SHIFT, PROGRAM, PITCH, VELOCITY, DURATION, OTHER."""
        return self._kind[token_id] if 0 <= token_id < len(self._kind) else OTHER

    @property
    def kinds(self) -> tuple[int, ...]:
        """`kind` of every id, in id order (a lookup table for whole batches)."""
        return tuple(self._kind)

    def value(self, token_id: int) -> int:
        """What a token says: ticks for a TimeShift or Duration, the number of a Program, Pitch
        or Velocity; 0 for the rest."""
        return self._value[token_id] if 0 <= token_id < len(self._value) else 0

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Readable names, for logs and tests; ids outside the vocabulary read as '?<id>'."""
        return [self.vocab[i] if 0 <= i < len(self.vocab) else f"?{i}" for i in ids]

    # -- encoding -------------------------------------------------------------------------

    def encode(
        self,
        notes: Iterable[Note],
        *,
        start_s: float = 0.0,
        end_s: float | None = None,
        conditions: Conditions | None = None,
        drop_p: float = 0.0,
        rng: random.Random | None = None,
        bos: bool = True,
        eos: bool = False,
        keep_held: bool = False,
    ) -> list[int]:
        """A whole sequence for the window [start_s, end_s): times are relative to start_s.

        Notes starting before start_s are dropped, or with `keep_held` clipped to start at
        start_s if they still sound then. Each condition is left out with probability
        `drop_p` (draws from `rng`, one per condition given).
        """
        ids = [self.bos_id] if bos else []
        if conditions is not None:
            ids += self.condition_ids(conditions, drop_p=drop_p, rng=rng)
        ids += self.encode_notes(notes, origin_s=start_s, end_s=end_s, keep_held=keep_held)[0]
        if eos:
            ids.append(self.eos_id)
        return ids

    def condition_ids(
        self, conditions: Conditions, *, drop_p: float = 0.0, rng: random.Random | None = None
    ) -> list[int]:
        """Condition tokens; each is left out with probability drop_p (one draw from rng each)."""
        names = condition_tokens(conditions)
        draw = (rng or random).random
        return [self._ids[n] for n in names if n in self._ids and not (drop_p > 0 and draw() < drop_p)]

    def encode_notes(
        self,
        notes: Iterable[Note],
        *,
        origin_s: float = 0.0,
        from_tick: int = 0,
        end_s: float | None = None,
        keep_held: bool = False,
    ) -> tuple[list[int], int]:
        """Note tokens only, times counted in ticks from origin_s, starting at tick
        `from_tick`; a note earlier than that is moved up to it. Returns (ids, last tick)."""
        events = []
        lo, hi = self.pitch_range
        for n in notes:
            if n.player not in self._program_ids or not lo <= n.pitch <= hi:
                continue
            onset_s = n.start_s
            if onset_s < origin_s:
                if not keep_held or n.end_s <= origin_s:
                    continue
                onset_s = origin_s
            if end_s is not None and onset_s >= end_s:
                continue
            tick = max(round((onset_s - origin_s) / self.tick_s), from_tick)
            events.append((tick, n.player, n.pitch, self._velocity_id(n.velocity), self._duration_id(n.end_s - onset_s)))
        events.sort()
        ids: list[int] = []
        cursor, last = from_tick, None
        for tick, player, pitch, velocity_id, duration_id in events:
            if (tick, player, pitch) == last:
                continue  # one key cannot be struck twice at once
            last = (tick, player, pitch)
            if tick > cursor:
                ids += self.shift_ids(tick - cursor)
                cursor = tick
            ids += (self._program_ids[player], self._pitch_ids[pitch], velocity_id, duration_id)
        return ids, cursor

    def shift_ids(self, ticks: int) -> list[int]:
        """TimeShift tokens that add up to `ticks`, largest first (as miditok does)."""
        cached = self._shift_cache.get(ticks)
        if cached is None:
            cached, left = [], ticks
            while left > 0:
                i = bisect.bisect_right(self._time_ticks, left) - 1
                if i < 0:
                    break
                cached.append(self._shift_ids[i])
                left -= self._time_ticks[i]
            if ticks < 4096:
                self._shift_cache[ticks] = cached
        return list(cached)

    def _duration_id(self, duration_s: float) -> int:
        return self._duration_ids[_nearest(self._time_ticks, duration_s / self.tick_s)]

    def _velocity_id(self, velocity: int) -> int:
        return self._velocity_ids[_nearest(self._velocities, velocity)]

    # -- persistence ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON data, with `vocab_size` and `fingerprint` at the top."""
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "tokenization": "TSD",
            "reference_bpm": REFERENCE_BPM,
            "miditok_version": importlib.metadata.version("miditok"),
            "vocab_size": self.vocab_size,
            "fingerprint": self.fingerprint,
            "miditok_config": self.miditok.config.to_dict(serialize=True),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JamTokenizer:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TokenizerConfigError(f"bad tokenizer config (not JSON: {exc})") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> JamTokenizer:
        """Rebuild a tokenizer; raises TokenizerConfigError when the vocabulary it gives
        differs from the saved fingerprint (e.g. another miditok version)."""
        try:
            if not isinstance(data, dict):
                raise TokenizerConfigError("tokenizer config is not a JSON object")
            if data.get("format") != _FORMAT or data.get("version") != _FORMAT_VERSION:
                raise TokenizerConfigError(f"not a {_FORMAT} v{_FORMAT_VERSION} config")
            if data.get("tokenization") != "TSD" or data.get("reference_bpm") != REFERENCE_BPM:
                raise TokenizerConfigError("config is not TSD at 120 bpm")
            tokenizer = cls(_config_from_dict(data["miditok_config"]))
        except TokenizerConfigError:
            raise
        except Exception as exc:  # a damaged file: say so in one line
            raise TokenizerConfigError(f"bad tokenizer config ({type(exc).__name__}: {exc})") from exc
        if tokenizer.fingerprint != data.get("fingerprint"):
            raise TokenizerConfigError(
                f"vocabulary fingerprint {tokenizer.fingerprint} differs from the saved "
                f"{data.get('fingerprint')} (saved with miditok {data.get('miditok_version')})"
            )
        return tokenizer

    def save(self, directory: str | Path) -> Path:
        """Write `directory/jamtui-tokenizer.json`; returns its path."""
        path = Path(directory) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> JamTokenizer:
        path = Path(directory) / CONFIG_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenizerConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        try:
            return cls.from_json(text)
        except TokenizerConfigError as exc:
            raise TokenizerConfigError(f"{path}: {exc}") from exc


def _nearest(values: Sequence[float], x: float) -> int:
    """Index of the value closest to x in an ascending list (the lower one on a tie)."""
    i = bisect.bisect_left(values, x)
    if 0 < i < len(values):
        return i if values[i] - x < x - values[i - 1] else i - 1
    return min(i, len(values) - 1)


def _config_from_dict(raw: dict[str, Any]) -> TokenizerConfig:
    raw = dict(raw)
    for key in ("beat_res", "beat_res_rest"):
        raw[key] = {tuple(map(int, k.split("_"))): v for k, v in raw[key].items()}
    raw["time_signature_range"] = {int(k): v for k, v in raw["time_signature_range"].items()}
    return TokenizerConfig.from_dict(raw)
