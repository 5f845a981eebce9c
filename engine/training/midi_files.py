"""MIDI files for the corpus: parsed safely, read into Notes per track with the sustain pedal
folded in, and normalised to the corpus track layout.
"""
from __future__ import annotations

import bisect
import io
import itertools
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import mido

from engine.events import SUSTAIN_CC, Note
from engine.midi.midifile import MidiFileError, TimedMessage
from engine.midi.notes import fold_sustain, pair_notes, sustain_intervals

DRUM_CHANNEL = 9  # channel 10 as musicians count
_MAX_BYTES = 64 * 2**20
_DEFAULT_TEMPO_US = 500_000
_KEPT_CONTROLS = frozenset({SUSTAIN_CC, 66, 67})  # sustain, sostenuto, soft pedal
_KEPT_META = ("set_tempo", "time_signature", "key_signature")
_LEFT_NAMES = {"links", "left", "lh", "left hand"}
_RIGHT_NAMES = {"rechts", "right", "rh", "right hand"}


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

    Notes pair within their track (`engine.midi.notes.pair_notes`); a note never released
    ends with the file. One piano has one pedal (`engine.midi.notes.fold_sustain`): a key
    released while CC64 >= 64 (any channel, any track) sounds until the pedal comes up,
    but never past the next onset of its pitch in any track. Notes come sorted by start,
    then pitch; `player` is PERFORMER.
    """
    return [notes for _name, notes in read_tracks(path)]


def read_tracks(path: str | Path, *, one_piano: bool = True) -> list[tuple[str, list[Note]]]:
    """(track name, notes) of each track, read as `read_notes` does; with `one_piano` False
    each track is its own instrument (a duet file): its own pedal, its own re-strikes."""
    midi = load_midi(path)
    tracks = [_absolute(track) for track in midi.tracks]
    names = [next((msg.name for _tick, msg in track if msg.type == "track_name"), "") for track in tracks]
    tempo = _TempoMap(tracks, midi.ticks_per_beat, str(path))
    end_s = tempo.seconds(max((track[-1][0] for track in tracks if track), default=0))
    played = [pair_notes(_timed(track, tempo), end_s) for track in tracks]
    if one_piano:
        folded = iter(fold_sustain([n for notes in played for n in notes], _pedals(tracks, tempo, end_s)))
        played = [list(itertools.islice(folded, len(notes))) for notes in played]
    else:
        played = [fold_sustain(notes, _pedals([track], tempo, end_s)) for notes, track in zip(played, tracks)]
    return [(name, sorted(notes, key=lambda n: (n.start_s, n.pitch, n.end_s))) for name, notes in zip(names, played)]


def _pedals(tracks, tempo: _TempoMap, end_s: float) -> list[tuple[float, float]]:
    # Every given track's pedal as one; at one tick and channel a release comes before a
    # press, whatever the track order.
    pedal = sorted(((tick, msg) for track in tracks for tick, msg in track
                    if msg.type == "control_change" and msg.control == SUSTAIN_CC),
                   key=lambda e: (e[0], e[1].channel, e[1].value >= 64))
    return sustain_intervals(_timed(pedal, tempo), end_s)


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


def _timed(events, tempo: _TempoMap) -> list[TimedMessage]:
    """Note and sustain messages of `(tick, message)` events, as raw bytes at seconds."""
    return [TimedMessage(tempo.seconds(tick), bytes(msg.bytes())) for tick, msg in events
            if msg.type in ("note_on", "note_off") or (msg.type == "control_change" and msg.control == SUSTAIN_CC)]


# --- normalising ---------------------------------------------------------------------------

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
