"""The pre-training corpus: MIDI files read into Notes per track, augmentation helpers, the
split by piece, and the writer of `OUT/{train,val,holdout}` with checksummed manifests.

Where the pieces come from (HANNDs, music21, MMA) is `engine.training.sources`.
"""
from __future__ import annotations

import bisect
import hashlib
import io
import json
import logging
import math
import random
import re
import shutil
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import mido

from engine.events import SUSTAIN_CC, Note
from engine.midi.midifile import MidiFileError

logger = logging.getLogger(__name__)

PIANO_LOW, PIANO_HIGH = 21, 108
DRUM_CHANNEL = 9  # channel 10 as musicians count
SPLITS = ("train", "val", "holdout")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
DEFAULT_VAL_FRACTION = 0.05
_MAX_BYTES = 64 * 2**20
_DEFAULT_TEMPO_US = 500_000
_KEPT_CONTROLS = frozenset({SUSTAIN_CC, 66, 67})  # sustain, sostenuto, soft pedal
_KEPT_META = ("set_tempo", "time_signature", "key_signature")
_LEFT_NAMES = {"links", "left", "lh", "left hand"}
_RIGHT_NAMES = {"rechts", "right", "rh", "right hand"}

OnStep = Callable[[str, int, int], None]
"""`on_step(stage, done, total)`: called as each item of a long stage finishes."""


# --- reading -------------------------------------------------------------------------------

def load_midi(path: str | Path) -> mido.MidiFile:
    """Parse a Standard MIDI File; every failure is a one-line `MidiFileError` naming it."""
    shown = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise MidiFileError(shown, f"cannot read file ({exc.strerror or exc})") from exc
    if not data:
        raise MidiFileError(shown, "empty file (0 bytes)")
    if len(data) > _MAX_BYTES:
        raise MidiFileError(shown, "file too large")
    if data[:4] != b"MThd":
        raise MidiFileError(shown, "not a MIDI file (bad header)")
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except EOFError as exc:
        raise MidiFileError(shown, "truncated MIDI file (data ends early)") from exc
    except Exception as exc:  # untrusted input: whatever mido trips on is the file's fault
        raise MidiFileError(shown, f"malformed MIDI data ({type(exc).__name__}: {exc})") from exc
    if midi.type == 2:
        raise MidiFileError(shown, "MIDI format 2 (independent patterns) is not supported")
    if midi.ticks_per_beat <= 0 or midi.ticks_per_beat & 0x8000:
        raise MidiFileError(shown, "SMPTE or zero time division is not supported")
    return midi


def read_notes(path: str | Path) -> list[list[Note]]:
    """The notes of each track, in seconds, with the sustain pedal folded into note ends.

    One piano has one pedal, as in `engine.tokenizer.fold_sustain`: a key released while
    CC64 >= 64 (any channel, any track) sounds until the pedal comes up, but never past
    the next onset of its pitch in any track, which also resolves overlapping notes of one
    pitch. Notes come sorted by start, then pitch; `player` is PERFORMER.
    """
    midi = load_midi(path)
    tracks = [_absolute(track) for track in midi.tracks]
    tempo = _TempoMap(tracks, midi.ticks_per_beat, str(path))
    end_s = tempo.seconds(max((track[-1][0] for track in tracks if track), default=0))
    played = [_played(track, tempo, end_s) for track in tracks]
    pedals = _pedal_intervals(tracks, tempo, end_s)
    onsets: dict[int, list[float]] = defaultdict(list)
    for start_s, _, pitch, _ in sorted(n for track in played for n in track):
        onsets[pitch].append(start_s)
    folded = []
    for track in played:
        notes = []
        for start_s, off_s, pitch, velocity in track:
            end = _pedal_release(pedals, off_s) or off_s
            later = onsets[pitch]
            j = bisect.bisect_right(later, start_s)
            if j < len(later):
                end = min(end, later[j])  # a re-strike ends the ringing string
            notes.append(Note(start_s, max(start_s, end), pitch, max(1, min(127, velocity))))
        folded.append(sorted(notes, key=lambda n: (n.start_s, n.pitch, n.end_s)))
    return folded


def _absolute(track: mido.MidiTrack) -> list[tuple[int, mido.Message]]:
    tick, out = 0, []
    for msg in track:
        tick += msg.time
        if msg.type == "end_of_track":
            break
        out.append((tick, msg))
    return out


class _TempoMap:
    """Ticks to seconds through every set_tempo in the file (type 1 keeps them in any track)."""

    def __init__(self, tracks: Sequence[Sequence[tuple[int, Any]]], ticks_per_beat: int, shown: str):
        changes = sorted((tick, msg.tempo) for track in tracks for tick, msg in track if msg.type == "set_tempo")
        self._tpb = ticks_per_beat
        self._ticks, self._secs, self._tempi = [0], [0.0], [_DEFAULT_TEMPO_US]
        for tick, tempo_us in changes:
            if tempo_us <= 0:
                raise MidiFileError(shown, "malformed MIDI data (tempo of 0)")
            if tick == self._ticks[-1]:
                self._tempi[-1] = tempo_us
                continue
            self._secs.append(self.seconds(tick))
            self._ticks.append(tick)
            self._tempi.append(tempo_us)

    def seconds(self, tick: int) -> float:
        i = bisect.bisect_right(self._ticks, tick) - 1
        return self._secs[i] + (tick - self._ticks[i]) * self._tempi[i] / 1e6 / self._tpb


def _pedal_intervals(tracks, tempo: _TempoMap, end_s: float) -> list[tuple[float, float]]:
    """`(down_s, up_s)` of the one pedal: the union of every channel's CC64."""
    events = sorted(
        (tick, msg.channel, msg.value >= 64)
        for track in tracks for tick, msg in track
        if msg.type == "control_change" and msg.control == SUSTAIN_CC
    )
    down_since: dict[int, float] = {}
    pressed = []
    for tick, channel, down in events:
        if down and channel not in down_since:
            down_since[channel] = tempo.seconds(tick)
        elif not down and channel in down_since:
            pressed.append((down_since.pop(channel), tempo.seconds(tick)))
    pressed += [(start_s, end_s) for start_s in down_since.values()]
    merged: list[tuple[float, float]] = []
    for down_s, up_s in sorted(pressed):
        if merged and down_s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], up_s))
        elif up_s > down_s:
            merged.append((down_s, up_s))
    return merged


def _pedal_release(intervals: list[tuple[float, float]], t_s: float) -> float | None:
    """When the pedal held at `t_s` goes up, or None when it is not down then."""
    i = bisect.bisect_right(intervals, (t_s, math.inf)) - 1
    if i >= 0 and intervals[i][0] <= t_s < intervals[i][1]:
        return intervals[i][1]
    return None


def _played(track, tempo: _TempoMap, end_s: float) -> list[tuple[float, float, int, int]]:
    """`(start_s, off_s, pitch, velocity)` from note-on/off pairs, first in first out per
    channel and pitch; a stray note-off is ignored, a note never released ends with the file."""
    sounding: dict[tuple[int, int], deque[tuple[float, int]]] = defaultdict(deque)
    played = []
    for tick, msg in track:
        if msg.type == "note_on" and msg.velocity > 0:
            sounding[msg.channel, msg.note].append((tempo.seconds(tick), msg.velocity))
        elif msg.type in ("note_off", "note_on") and sounding.get((msg.channel, msg.note)):
            start_s, velocity = sounding[msg.channel, msg.note].popleft()
            played.append((start_s, tempo.seconds(tick), msg.note, velocity))
    for (_, pitch), queue in sounding.items():
        played += [(start_s, end_s, pitch, velocity) for start_s, velocity in queue]
    return played


# --- augmentation --------------------------------------------------------------------------

def transpose(notes: Iterable[Note], semitones: int, *, low: int = PIANO_LOW, high: int = PIANO_HIGH) -> list[Note]:
    """Every pitch moved by `semitones`; a note that leaves `low..high` is dropped."""
    return [replace(n, pitch=n.pitch + semitones) for n in notes if low <= n.pitch + semitones <= high]


def transpose_bounds(notes: Iterable[Note], *, low: int = PIANO_LOW, high: int = PIANO_HIGH) -> tuple[int, int]:
    """`(down, up)`: the furthest shifts (down <= 0 <= up) that drop no note; (0, 0) for none."""
    pitches = [n.pitch for n in notes]
    if not pitches:
        return 0, 0
    return min(0, low - min(pitches)), max(0, high - max(pitches))


def stretch(notes: Iterable[Note], factor: float) -> list[Note]:
    """Tempo change: every time multiplied by `factor` (1.1 is 10% slower)."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"stretch factor must be a positive number, not {factor!r}")
    return [replace(n, start_s=n.start_s * factor, end_s=n.end_s * factor) for n in notes]


def humanize(notes: Iterable[Note], rng: random.Random, timing_ms: float = 15.0, velocity_sd: float = 8.0) -> list[Note]:
    """Score data made to sound played; the same `rng` state gives the same result.

    Notes starting together move together by N(0, timing_ms) so chords stay chords, and each
    note adds its own N(0, timing_ms / 4) spread; velocities move by N(0, velocity_sd). Every
    draw is clipped at two standard deviations, so no onset moves more than 2.5 * timing_ms
    and no velocity more than 2 * velocity_sd (then into 1..127). Durations are kept, except
    that a note is cut where the next note of its pitch now starts; nothing starts before 0.
    """
    ordered = sorted(notes, key=lambda n: (n.start_s, n.pitch, n.end_s, n.velocity))
    sd_s, spread_s = timing_ms / 1000, timing_ms / 4000
    group_shift: dict[float, float] = {}
    moved = []
    for n in ordered:
        key = round(n.start_s, 6)
        if key not in group_shift:
            group_shift[key] = _clipped_gauss(rng, sd_s)
        start_s = max(0.0, n.start_s + group_shift[key] + _clipped_gauss(rng, spread_s))
        velocity = round(n.velocity + _clipped_gauss(rng, velocity_sd))
        moved.append(replace(n, start_s=start_s, end_s=start_s + n.duration_s, velocity=max(1, min(127, velocity))))
    by_pitch: dict[int, list[int]] = defaultdict(list)
    for j in sorted(range(len(moved)), key=lambda j: moved[j].start_s):
        by_pitch[moved[j].pitch].append(j)
    for indices in by_pitch.values():
        for a, b in zip(indices, indices[1:]):
            if moved[a].end_s > moved[b].start_s:
                moved[a] = replace(moved[a], end_s=max(moved[b].start_s, moved[a].start_s + 0.005))
    return sorted(moved, key=lambda n: (n.start_s, n.pitch, n.end_s))


def _clipped_gauss(rng: random.Random, sd: float) -> float:
    return max(-2 * sd, min(2 * sd, rng.gauss(0.0, sd))) if sd > 0 else 0.0


# --- splitting -----------------------------------------------------------------------------

def split_for(piece_id: str, val_fraction: float = DEFAULT_VAL_FRACTION) -> str:
    """"val" or "train", from a hash of the piece id alone: stable across runs and machines."""
    h = int.from_bytes(hashlib.sha256(piece_id.encode()).digest()[:8], "big")
    return "val" if h < val_fraction * 2**64 else "train"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def slug(piece_id: str) -> str:
    """A file name for a piece id: `m21/bach/bwv66.6` -> `m21_bach_bwv66.6`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", piece_id).strip("._") or "piece"


# --- writing -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One piece a source offers: its MIDI as fetched or rendered, and where it came from.

    `layout` "hands": a two-track file with the right hand first (HANNDs: "Rechts", "Links");
    it is written left hand as track 0 (channel 1), right hand as track 1 (channel 2).
    "parts": every pitched track (or channel of a track) becomes a track; drums are dropped.
    """

    id: str
    source: str
    origin: str
    raw_path: Path
    tags: Mapping[str, Any] = field(default_factory=dict)
    layout: str = "parts"
    holdout: bool = False


def normalize_midi(midi: mido.MidiFile, layout: str, shown: str) -> tuple[mido.MidiFile, list[str]]:
    """A type 1 file with one pitched part per track, tempo and meter in track 0; notes,
    pedals and program changes only. Returns it with the track names."""
    parts: dict[tuple[int, int], list[tuple[int, mido.Message]]] = defaultdict(list)
    meta: set[tuple[int, str, tuple]] = set()
    names = {}
    for t, track in enumerate(midi.tracks):
        for tick, msg in _absolute(track):
            if msg.type == "track_name":
                names.setdefault(t, msg.name.strip())
            elif msg.type in _KEPT_META:
                fields = msg.dict()
                del fields["type"], fields["time"]
                meta.add((tick, msg.type, tuple(sorted(fields.items()))))
            elif _kept(msg):
                parts[t, msg.channel].append((tick, msg))
    pitched = [key for key, events in parts.items()
               if key[1] != DRUM_CHANNEL and any(m.type == "note_on" and m.velocity for _, m in events)]
    if layout == "hands":
        kept = _hands(pitched, names, shown)
    elif layout == "parts":
        per_track = defaultdict(int)
        for t, _ in pitched:
            per_track[t] += 1
        kept = [(key, names.get(key[0]) or f"track {key[0]}") if per_track[key[0]] == 1
                else (key, f"{names.get(key[0]) or f'track {key[0]}'} ch{key[1] + 1}") for key in sorted(pitched)]
    else:
        raise ValueError(f"unknown layout {layout!r}")
    if not kept:
        raise MidiFileError(shown, "contains no pitched notes")
    meta_events = [(tick, mido.MetaMessage(kind, **dict(items))) for tick, kind, items in sorted(meta)]
    # Pedals kept in a track of their own still act on their channel: give them to its parts.
    loose = [(key[1], e) for key, events in parts.items() if key not in pitched and key[1] != DRUM_CHANNEL
             for e in events if e[1].type == "control_change"]
    tracks = []
    for i, (key, name) in enumerate(kept):
        events = parts[key] + [e for channel, e in loose if layout == "hands" or channel == key[1]]
        if layout == "hands":
            events = [(tick, msg.copy(channel=i)) for tick, msg in events]
        head = [(0, mido.MetaMessage("track_name", name=name))] + (meta_events if i == 0 else [])
        tracks.append(_delta_track(head, events))
    return mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat, tracks=tracks), [name for _, name in kept]


def _kept(msg: mido.Message) -> bool:
    return msg.type in ("note_on", "note_off", "program_change") or (
        msg.type == "control_change" and msg.control in _KEPT_CONTROLS)


def _hands(pitched, names, shown) -> list[tuple[tuple[int, int], str]]:
    by_name = {names.get(t, "").lower(): (t, c) for t, c in pitched}
    left = next((key for name, key in by_name.items() if name in _LEFT_NAMES), None)
    right = next((key for name, key in by_name.items() if name in _RIGHT_NAMES), None)
    if left is None or right is None:
        if len(pitched) != 2:
            raise MidiFileError(shown, f"expected two hands, found {len(pitched)} pitched parts")
        right, left = sorted(pitched)  # HANNDs order: right hand first
    return [(left, "left"), (right, "right")]


def _delta_track(head, events) -> mido.MidiTrack:
    track, last = mido.MidiTrack(), 0
    # Meta first at equal ticks (a tempo change applies to the notes that share its tick);
    # otherwise each list keeps its order, so a note-off stays before a re-strike.
    merged = sorted([(tick, 0, i, msg) for i, (tick, msg) in enumerate(head)]
                    + [(tick, 1, i, msg) for i, (tick, msg) in enumerate(events)], key=lambda e: e[:3])
    for tick, _, _, msg in merged:
        track.append(msg.copy(time=tick - last))
        last = tick
    return track


def build_corpus(
    candidates: Sequence[Candidate],
    out_dir: str | Path,
    *,
    sources: Mapping[str, Mapping[str, Any]] | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    on_step: OnStep | None = None,
) -> dict[str, Any]:
    """Write every candidate into `out_dir/{train,val,holdout}` with the manifests; return
    the main manifest. `sources` holds each source's description and the items it already
    skipped; files that fail here are added to those skips. The old split folders and
    manifest are replaced only once the new ones are complete.
    """
    out_dir = Path(out_dir)
    duplicates = sorted(i for i, n in Counter(c.id for c in candidates).items() if n > 1)
    if duplicates:
        raise ValueError(f"duplicate piece ids: {', '.join(duplicates[:5])}")
    staging = out_dir / ".build"
    shutil.rmtree(staging, ignore_errors=True)
    for split in SPLITS:
        (staging / split).mkdir(parents=True)
    info = {name: dict(meta) for name, meta in (sources or {}).items()}
    skipped: dict[str, list] = {name: list(meta.get("skipped", [])) for name, meta in info.items()}
    pieces = []
    for done, c in enumerate(sorted(candidates, key=lambda c: c.id), start=1):
        split = "holdout" if c.holdout else split_for(c.id, val_fraction)
        try:
            pieces.append(_write_piece(c, split, staging))
        except MidiFileError as exc:
            logger.warning("skipped %s: %s", c.id, exc.reason)
            skipped.setdefault(c.source, []).append({"id": c.id, "origin": c.origin, "reason": exc.reason})
        if on_step:
            on_step("write", done, len(candidates))
    manifest = _manifest(pieces, info, skipped, val_fraction)
    holdout = [dict(p, path=p["path"].split("/", 1)[1]) for p in pieces if p["split"] == "holdout"]
    holdout_manifest = {"format": MANIFEST_FORMAT, "split": "holdout", "selection": manifest["holdout"],
                        "summary": _totals(holdout), "pieces": holdout}
    _write_json(staging / MANIFEST, manifest)
    _write_json(staging / "holdout" / MANIFEST, holdout_manifest)
    for name in (*SPLITS, MANIFEST):
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        (staging / name).rename(target)
    staging.rmdir()
    return manifest


def _write_piece(c: Candidate, split: str, staging: Path) -> dict[str, Any]:
    midi, track_names = normalize_midi(load_midi(c.raw_path), c.layout, str(c.raw_path))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    rel = f"{split}/{slug(c.id)}.mid"
    (staging / rel).write_bytes(buffer.getvalue())
    tracks = read_notes(staging / rel)
    notes = [n for track in tracks for n in track]
    has_pedal = any(m.type == "control_change" and m.control == SUSTAIN_CC and m.value >= 64
                    for track in midi.tracks for m in track)
    return {
        "id": c.id, "split": split, "source": c.source, "tags": dict(c.tags),
        "duration_s": round(max((n.end_s for n in notes), default=0.0), 3),
        "n_notes": len(notes), "has_pedal": has_pedal, "two_hands": c.layout == "hands",
        "tracks": track_names, "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
        "path": rel, "origin": c.origin,
    }


def _totals(pieces: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"files": len(pieces), "hours": round(sum(p["duration_s"] for p in pieces) / 3600, 3),
            "notes": sum(p["n_notes"] for p in pieces)}


def _manifest(pieces, info, skipped, val_fraction) -> dict[str, Any]:
    sources = {}
    for name in sorted(set(info) | set(skipped) | {p["source"] for p in pieces}):
        mine = [p for p in pieces if p["source"] == name]
        sources[name] = {**info.get(name, {}), **_totals(mine),
                         "by_split": {s: _totals([p for p in mine if p["split"] == s]) for s in SPLITS},
                         "skipped": sorted(skipped.get(name, []), key=lambda s: (s.get("id", ""), s["origin"]))}
    holdout = next((meta.pop("holdout") for meta in sources.values() if "holdout" in meta), None)
    return {
        "format": MANIFEST_FORMAT,
        "val_fraction": val_fraction,
        "split_rule": "holdout by source rule; else val when sha256(id)[:8] < val_fraction * 2**64",
        "track_layout": "two_hands pieces: track 0 = left hand, track 1 = right hand; "
                        "others: one pitched part per track, drums dropped; tempo map in track 0",
        "holdout": holdout,
        "splits": {s: _totals([p for p in pieces if p["split"] == s]) for s in SPLITS},
        "sources": sources,
        "pieces": pieces,
    }


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def verify_manifest(out_dir: str | Path) -> list[str]:
    """Problems with a built corpus (missing or changed files, a piece in two splits, stray
    files); an empty list when the files are exactly what the manifests say."""
    out_dir = Path(out_dir)
    problems = []
    main = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    holdout = json.loads((out_dir / "holdout" / MANIFEST).read_text(encoding="utf-8"))
    listed = {}
    for base, manifest in ((out_dir, main), (out_dir / "holdout", holdout)):
        for p in manifest["pieces"]:
            path = base / p["path"]
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif sha256_file(path) != p["sha256"]:
                problems.append(f"{path}: sha256 differs from the manifest")
            listed[path.resolve()] = p["id"]
    splits_of = defaultdict(set)
    for p in main["pieces"]:
        splits_of[p["id"]].add(p["split"])
    problems += [f"{i}: in several splits {sorted(s)}" for i, s in splits_of.items() if len(s) > 1]
    held = {p["id"] for p in holdout["pieces"]}
    if held != {p["id"] for p in main["pieces"] if p["split"] == "holdout"}:
        problems.append("holdout manifest and main manifest disagree on the hold-out pieces")
    for split in SPLITS:
        problems += [f"{f}: not in the manifest" for f in sorted((out_dir / split).glob("*.mid"))
                     if f.resolve() not in listed]
    return problems
