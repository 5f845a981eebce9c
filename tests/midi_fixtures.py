"""Small MIDI files made in code, with exactly known timings, plus broken ones for the loader.

All well-formed files use 480 ticks per beat and start at 120 BPM, so 240 ticks = 0.25 s.
"""
from __future__ import annotations

import random
import struct
from pathlib import Path

import mido

TICKS_PER_BEAT = 480
Msg = mido.Message | mido.MetaMessage
SCALE_PITCHES = (60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79, 81, 83, 84)


def _ticks(t_s: float, tempo_us: int = 500_000) -> int:
    ticks = t_s * 1_000_000 * TICKS_PER_BEAT / tempo_us
    if abs(ticks - round(ticks)) > 1e-9:
        raise ValueError(f"{t_s} s is not a whole number of ticks at tempo {tempo_us}")
    return round(ticks)


def _track(abs_messages: list[tuple[int, Msg]]) -> mido.MidiTrack:
    """A track from `(absolute tick, message)` pairs, kept in the order given."""
    track = mido.MidiTrack()
    last_tick = 0
    for tick, msg in abs_messages:
        track.append(msg.copy(time=tick - last_tick))
        last_tick = tick
    return track


def _save(directory: Path, name: str, tracks: list[mido.MidiTrack], file_type: int) -> Path:
    path = Path(directory) / name
    mido.MidiFile(type=file_type, ticks_per_beat=TICKS_PER_BEAT, tracks=tracks).save(path)
    return path


def write_scale(
    directory: Path, name: str = "scale.mid", notes: int = 8, step_s: float = 0.25, velocity: int = 80
) -> Path:
    """Type 0, channel 0: SCALE_PITCHES[i] from i*step_s to (i+1)*step_s; each note-off
    comes just before the next note-on at the same tick."""
    step = _ticks(step_s)
    messages: list[tuple[int, Msg]] = [(0, mido.MetaMessage("set_tempo", tempo=500_000))]
    for i, pitch in enumerate(SCALE_PITCHES[:notes]):
        messages.append((i * step, mido.Message("note_on", note=pitch, velocity=velocity)))
        messages.append(((i + 1) * step, mido.Message("note_off", note=pitch, velocity=64)))
    return _save(directory, name, [_track(messages)], file_type=0)


def write_chords_with_pedal(directory: Path, name: str = "chords.mid") -> Path:
    """Type 0, channel 0. Tempo 120 BPM, then 60 BPM from tick 960 (1.0 s):

    0.0  program 0, CC64=127, C chord on (60 64 67, vel 90)
    0.5  60 off as note-on vel 0, 64 67 note-off, F chord on (65 69 72, vel 80)
    0.75 CC64=0
    1.0  tempo -> 60 BPM, F chord off, G chord on (67 71 74, vel 100)
    1.5  CC64=127          (tick 1200: 240 ticks at 60 BPM)
    2.0  G chord off (67 as note-on vel 0), CC64=0
    """
    on, off, cc = "note_on", "note_off", "control_change"
    messages = [
        (0, mido.MetaMessage("set_tempo", tempo=500_000)),
        (0, mido.Message("program_change", program=0)),
        (0, mido.Message(cc, control=64, value=127)),
        *[(0, mido.Message(on, note=p, velocity=90)) for p in (60, 64, 67)],
        (480, mido.Message(on, note=60, velocity=0)),
        (480, mido.Message(off, note=64)),
        (480, mido.Message(off, note=67)),
        *[(480, mido.Message(on, note=p, velocity=80)) for p in (65, 69, 72)],
        (720, mido.Message(cc, control=64, value=0)),
        (960, mido.MetaMessage("set_tempo", tempo=1_000_000)),
        *[(960, mido.Message(off, note=p)) for p in (65, 69, 72)],
        *[(960, mido.Message(on, note=p, velocity=100)) for p in (67, 71, 74)],
        (1200, mido.Message(cc, control=64, value=127)),
        (1440, mido.Message(on, note=67, velocity=0)),
        (1440, mido.Message(off, note=71)),
        (1440, mido.Message(off, note=74)),
        (1440, mido.Message(cc, control=64, value=0)),
    ]
    return _save(directory, name, [_track(messages)], file_type=0)


def write_two_tracks(directory: Path, name: str = "hands.mid") -> Path:
    """Type 1: track 0 conducts (120 BPM, 60 BPM from tick 960 = 1.0 s), track 1 is the
    right hand (channel 0), track 2 the left hand (channel 1).

    right: 72 0.0-0.5, 74 0.5-1.0, 76 1.0-2.0, 77 2.0-3.0 (vel 70)
    left:  48 0.0-1.0, 43 1.0-3.0 (vel 60)
    """
    conductor = _track([
        (0, mido.MetaMessage("track_name", name="conductor")),
        (0, mido.MetaMessage("time_signature", numerator=4, denominator=4)),
        (0, mido.MetaMessage("set_tempo", tempo=500_000)),
        (960, mido.MetaMessage("set_tempo", tempo=1_000_000)),
    ])
    right: list[tuple[int, Msg]] = [(0, mido.MetaMessage("track_name", name="right"))]
    for i, pitch in enumerate((72, 74, 76, 77)):
        right.append((i * 480, mido.Message("note_on", note=pitch, velocity=70)))
        right.append(((i + 1) * 480, mido.Message("note_off", note=pitch)))
    left: list[tuple[int, Msg]] = [(0, mido.MetaMessage("track_name", name="left"))]
    for i, pitch in enumerate((48, 43)):
        left.append((i * 960, mido.Message("note_on", channel=1, note=pitch, velocity=60)))
        left.append(((i + 1) * 960, mido.Message("note_off", channel=1, note=pitch)))
    return _save(directory, name, [conductor, _track(right), _track(left)], file_type=1)


def write_no_notes(directory: Path, name: str = "no_notes.mid") -> Path:
    """A volume CC (channel 0, at 0.5 s) and meta messages, but not one note."""
    messages = [
        (0, mido.MetaMessage("track_name", name="silence")),
        (0, mido.MetaMessage("set_tempo", tempo=500_000)),
        (480, mido.Message("control_change", control=7, value=100)),
    ]
    return _save(directory, name, [_track(messages)], file_type=0)


def write_truncated(directory: Path, name: str = "truncated.mid") -> Path:
    """A scale cut 10 bytes short: the track chunk claims more bytes than the file holds."""
    path = write_scale(directory, name=name)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    return path


def write_bad_header(directory: Path, name: str = "bad_header.mid") -> Path:
    """A good scale whose first four bytes say RIFF instead of MThd."""
    path = write_scale(directory, name=name)
    path.write_bytes(b"RIFF" + path.read_bytes()[4:])
    return path


def write_garbage(directory: Path, name: str = "garbage.mid", seed: int = 1234) -> Path:
    """A valid format-0 header and an MTrk chunk of the right length full of random bytes."""
    body = random.Random(seed).randbytes(256)
    return write_raw(directory, name, [body])


def write_empty(directory: Path, name: str = "empty.mid") -> Path:
    path = Path(directory) / name
    path.write_bytes(b"")
    return path


def write_raw(
    directory: Path,
    name: str,
    track_bodies: list[bytes],
    *,
    file_format: int = 0,
    division: int = TICKS_PER_BEAT,
) -> Path:
    """A file from raw track bodies (delta times and events), each wrapped in an MTrk chunk."""
    data = b"MThd" + struct.pack(">LHHH", 6, file_format, len(track_bodies), division)
    for body in track_bodies:
        data += b"MTrk" + struct.pack(">L", len(body)) + body
    path = Path(directory) / name
    path.write_bytes(data)
    return path


def write_with_drums(directory: Path, name: str = "drums.mid", pitches=(60, 62, 64, 65),
                     drums=(36, 38, 42, 46), step_s: float = 0.25) -> Path:
    """Type 0: `pitches` one per step on channel 1 and `drums` struck on channel 10 at the same steps
    (no pitches: a drums-only file)."""
    step = _ticks(step_s)
    messages: list[tuple[int, Msg]] = []
    for channel, notes in ((0, pitches), (9, drums)):
        for i, pitch in enumerate(notes):
            messages.append((i * step, mido.Message("note_on", channel=channel, note=pitch, velocity=90)))
            messages.append((i * step + step // 2, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
    messages.sort(key=lambda item: item[0])
    return _save(directory, name, [_track(messages)], file_type=0)
