"""Standard MIDI Files: safe loading of untrusted files into time-sorted raw channel
messages, and the one writer of our own two-player type-1 files (recordings, duets).

Every loading failure becomes a one-line `MidiFileError` that names the file; nothing else escapes.
"""
from __future__ import annotations

import io
import logging
import os
import stat
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable, Sequence

import mido

from engine.events import PLAYER_NAMES, SUSTAIN_CC, Note

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_TEMPO_US = 500_000  # 120 BPM, the SMF default until a set_tempo says otherwise
_HEADER_LEN = 14  # b"MThd", length 6, format, track count, division
_MB = 2**20
_MAX_DELTA_TICKS = 0x0FFFFFFF  # a delta time is at most 4 bytes; mido reads any length
DRUM_CHANNEL = 9  # channel 10 as musicians count
TICKS_PER_BEAT = 480  # what we write
# 120 bpm at 480 ticks per beat: one tick is exactly 1/960 s, so ticks map to seconds exactly.
TICKS_PER_S = TICKS_PER_BEAT * 1_000_000 // DEFAULT_TEMPO_US


class MidiFileError(Exception):
    """A MIDI file could not be loaded; `str()` is one line: `<path>: <reason>`."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = _one_line(reason)
        super().__init__(f"{path}: {self.reason}")

    def __reduce__(self):  # keep it picklable across processes despite the two-argument init
        return type(self), (self.path, self.reason)


@dataclass(frozen=True, slots=True)
class TimedMessage:
    """Raw bytes of one channel message, `t_s` seconds after the start of the file."""

    t_s: float
    data: bytes


def load_midi_events(
    path: str | os.PathLike[str],
    *,
    require_notes: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[TimedMessage]:
    """Read a MIDI file (format 0 or 1) and return its channel messages in time order.

    Tracks are merged with the tempo map; at equal times, lower tracks come first and a
    track keeps its own order. Note-on with velocity 0 comes out as note-off (0x80).
    Sysex, system and meta messages are dropped: a file drives a performer's input, and
    sysex from a stranger's file could reconfigure a synth.
    """
    shown = _display(path)
    data = _read_bytes(path, shown, max_bytes)
    try:
        events = _parse(data, shown)
    except MidiFileError:
        raise
    except Exception as exc:  # untrusted input: whatever mido trips on is the file's fault
        logger.debug("unexpected error parsing %s", shown, exc_info=True)
        raise MidiFileError(shown, f"malformed MIDI data ({type(exc).__name__}: {exc})") from exc
    if require_notes and not any(_is_sounding_note_on(e.data) for e in events):
        raise MidiFileError(shown, "contains no notes")
    return events


def load_pitched_events(path: str | os.PathLike[str], *, warn: bool = True,
                        max_bytes: int = DEFAULT_MAX_BYTES) -> list[TimedMessage]:
    """`load_midi_events` for a performer or a prompt: channel 10 is drums, not piano pitches, so
    its messages are dropped (with one logged warning naming the file, unless not `warn`); a file
    whose only notes are drums is a `MidiFileError`."""
    shown = _display(path)
    events = load_midi_events(path, max_bytes=max_bytes)
    pitched = [e for e in events if e.data[0] & 0x0F != DRUM_CHANNEL]
    if not any(_is_sounding_note_on(e.data) for e in pitched):
        raise MidiFileError(shown, "has no notes but drums (channel 10)")
    drum_notes = sum(1 for e in events if e.data[0] & 0x0F == DRUM_CHANNEL and _is_sounding_note_on(e.data))
    if drum_notes and warn:
        logger.warning("%s: ignored %d drum note%s on channel 10", shown, drum_notes, "s" if drum_notes != 1 else "")
    return pitched


def midi_duration_s(events: Sequence[TimedMessage]) -> float:
    """Time of the last message (0.0 for none); trailing silence after it is not counted."""
    return max((e.t_s for e in events), default=0.0)


def _read_bytes(path: str | os.PathLike[str], shown: str, max_bytes: int) -> bytes:
    try:
        # stat first: opening a FIFO would block, and a huge file should not be read at all.
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise MidiFileError(shown, "is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise MidiFileError(shown, "not a regular file")
        if info.st_size > max_bytes:
            raise MidiFileError(shown, f"file too large ({_size(info.st_size)} > {_size(max_bytes)})")
        with open(path, "rb") as f:
            # Read one byte past the limit in case the file grew since the stat.
            data = f.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise MidiFileError(shown, "no such file") from exc
    except PermissionError as exc:
        raise MidiFileError(shown, "permission denied") from exc
    except IsADirectoryError as exc:
        raise MidiFileError(shown, "is a directory") from exc
    except OSError as exc:
        raise MidiFileError(shown, f"cannot read file ({exc.strerror or exc})") from exc
    except ValueError as exc:  # e.g. an embedded NUL in the path
        raise MidiFileError(shown, f"invalid path ({exc})") from exc
    if len(data) > max_bytes:
        raise MidiFileError(shown, f"file too large (> {_size(max_bytes)})")
    if not data:
        raise MidiFileError(shown, "empty file (0 bytes)")
    return data


def _parse(data: bytes, shown: str) -> list[TimedMessage]:
    if data[:4] != b"MThd":
        raise MidiFileError(shown, "not a MIDI file (bad header)")
    if len(data) < _HEADER_LEN:
        raise MidiFileError(shown, "truncated MIDI file (header ends early)")
    header_len, fmt, n_tracks, division = struct.unpack(">LHHH", data[4:14])
    if header_len < 6:
        raise MidiFileError(shown, f"not a MIDI file (header length {header_len} < 6)")
    if fmt == 2:
        raise MidiFileError(shown, "MIDI format 2 (independent patterns) is not supported")
    if fmt > 2:
        raise MidiFileError(shown, f"not a MIDI file (unknown format {fmt})")
    if n_tracks == 0:
        raise MidiFileError(shown, "contains no tracks")
    smpte = _smpte_timebase(division, shown)

    chunks = _track_chunks(data, 8 + header_len, n_tracks, shown)
    timed: list[tuple[int, int, int, mido.Message | mido.MetaMessage]] = []
    for track_no, chunk in enumerate(chunks, start=1):
        tick = 0
        for seq, msg in enumerate(_read_track(chunk, track_no, shown)):
            if msg.time > _MAX_DELTA_TICKS:
                reason = f"malformed MIDI data (track {track_no}: delta time {msg.time} too large)"
                raise MidiFileError(shown, reason)
            tick += msg.time
            if msg.type == "end_of_track":
                break  # anything after it is not part of the track
            if msg.type == "set_tempo" and msg.tempo == 0:
                raise MidiFileError(shown, f"malformed MIDI data (track {track_no}: tempo of 0)")
            timed.append((tick, track_no, seq, msg))
    timed.sort(key=lambda item: item[:3])
    return _to_seconds(timed, division, smpte)


def _smpte_timebase(division: int, shown: str) -> tuple[int, int] | None:
    """`(units per tick, units per second)` for SMPTE division; None for ticks per beat."""
    if division & 0x8000:
        fps = 256 - (division >> 8)  # the high byte is the negative frame rate
        ticks_per_frame = division & 0xFF
        if fps not in (24, 25, 29, 30) or ticks_per_frame == 0:
            raise MidiFileError(shown, f"malformed MIDI data (bad SMPTE division 0x{division:04x})")
        if fps == 29:  # drop-frame: 30000/1001 frames per second
            return 1001, 30000 * ticks_per_frame
        return 1, fps * ticks_per_frame
    if division == 0:
        raise MidiFileError(shown, "malformed MIDI data (0 ticks per beat)")
    return None


def _track_chunks(data: bytes, pos: int, n_tracks: int, shown: str) -> list[bytes]:
    """Walk the chunks ourselves: mido reads past a track's declared end and accepts short files."""
    chunks: list[bytes] = []
    while len(chunks) < n_tracks:
        track_no = len(chunks) + 1
        if pos + 8 > len(data):
            if pos >= len(data):
                plural = "s" if n_tracks != 1 else ""
                raise MidiFileError(
                    shown, f"truncated MIDI file (header says {n_tracks} track{plural}, found {len(chunks)})"
                )
            raise MidiFileError(shown, f"truncated MIDI file (track {track_no} ends early)")
        chunk_id, length = struct.unpack(">4sL", data[pos : pos + 8])
        body_end = pos + 8 + length
        if chunk_id == b"MTrk":
            if body_end > len(data):
                raise MidiFileError(shown, f"truncated MIDI file (track {track_no} ends early)")
            chunks.append(data[pos:body_end])
        elif not all(0x20 <= b < 0x7F for b in chunk_id):
            reason = f"malformed MIDI data (no track chunk where track {track_no} should be)"
            raise MidiFileError(shown, reason)
        elif body_end > len(data):
            raise MidiFileError(shown, f"truncated MIDI file (chunk {chunk_id.decode()!r} ends early)")
        # Other chunks with printable ids are skipped, as the SMF spec asks of readers.
        pos = body_end
    return chunks


def _read_track(chunk: bytes, track_no: int, shown: str) -> list:
    # One track per stream: a message running past the chunk end hits EOF instead of
    # reading the next chunk's bytes as music.
    header = b"MThd" + struct.pack(">LHHH", 6, 1, 1, 480)
    try:
        return list(mido.MidiFile(file=io.BytesIO(header + chunk)).tracks[0])
    except EOFError as exc:
        raise MidiFileError(shown, f"truncated MIDI file (track {track_no} ends early)") from exc
    except Exception as exc:
        # mido's own OSError/ValueError texts explain themselves; a bare IndexError does not.
        detail = f"{type(exc).__name__}: {exc}"
        if type(exc) in (OSError, ValueError) and str(exc):
            detail = str(exc)
        raise MidiFileError(shown, f"malformed MIDI data (track {track_no}: {detail})") from exc


def _to_seconds(timed: list, division: int, smpte: tuple[int, int] | None) -> list[TimedMessage]:
    # Integer time units (for tempo time: microseconds x ticks-per-beat) keep tempo-mapped
    # times exact until one final division, so known timings (0.25 s) come out exactly
    # and never drift over a long file.
    units_per_tick, units_per_s = smpte or (DEFAULT_TEMPO_US, 1_000_000 * division)
    last_tick = 0
    elapsed_units = 0
    events: list[TimedMessage] = []
    for tick, _track, _seq, msg in timed:
        elapsed_units += (tick - last_tick) * units_per_tick
        last_tick = tick
        if msg.type == "set_tempo":
            if smpte is None:  # SMPTE time does not follow tempo
                units_per_tick = msg.tempo
            continue
        if msg.is_meta:
            continue
        raw = bytes(msg.bytes())
        if not 0x80 <= raw[0] < 0xF0:
            continue  # sysex and system messages, see load_midi_events
        if raw[0] & 0xF0 == 0x90 and raw[2] == 0:
            raw = bytes((0x80 | (raw[0] & 0x0F), raw[1], 0))
        events.append(TimedMessage(elapsed_units / units_per_s, raw))
    return events


def _is_sounding_note_on(data: bytes) -> bool:
    return data[0] & 0xF0 == 0x90 and data[2] > 0


def _display(path: str | os.PathLike[str]) -> str:
    # Keep the error one line even for a file name with newlines or control characters.
    text = os.fsdecode(path)
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _size(n_bytes: int) -> str:
    if n_bytes >= _MB:
        return f"{round(n_bytes / _MB, 1):g} MB"
    if n_bytes >= 1024:
        return f"{round(n_bytes / 1024, 1):g} KB"
    return f"{n_bytes} bytes"


# --- writing -------------------------------------------------------------------------------

def write_player_tracks(path: Path, tracks: Sequence[Sequence[tuple[float, mido.Message]]],
                        end_s: float) -> None:
    """Write a type-1 file at 120 bpm, one track per player: track i is named
    `PLAYER_NAMES[i]` and holds `tracks[i]`, `(t_s, message)` in the order given; tempo in
    the first. Notes still held and pedals still down come up at `end_s`, where every track
    ends, so the file never leaves a note sounding. Written atomically (tmp, fsync, replace)."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    end_tick = round(end_s * TICKS_PER_S)
    for name, timed in zip(PLAYER_NAMES, tracks, strict=True):
        midi.tracks.append(_player_track(name, timed, end_tick, tempo=not midi.tracks))
    atomic_write(path, lambda f: midi.save(file=f))


def write_duet(path: Path, notes: Iterable[Note]) -> None:
    """Notes as a type-1 file, one track per player (performer, ai) on channel `player`,
    at 120 bpm so seconds map to ticks."""
    notes = list(notes)
    tracks = []
    for player in range(len(PLAYER_NAMES)):
        timed = []
        for n in notes:
            if n.player == player:
                start, end = round(n.start_s * TICKS_PER_S), round(n.end_s * TICKS_PER_S)
                timed.append((start, 1, n.start_s, mido.Message("note_on", note=n.pitch, velocity=n.velocity, channel=player)))
                # At one tick a release goes before a strike (a re-strike), but after its own note's strike.
                timed.append((end, 0 if end > start else 2, n.end_s,
                              mido.Message("note_off", note=n.pitch, velocity=0, channel=player)))
        timed.sort(key=lambda item: item[:2])
        tracks.append([(t_s, message) for _, _, t_s, message in timed])
    write_player_tracks(path, tracks, max((n.end_s for n in notes), default=0.0))


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """`write` into `<path>.tmp`, fsync it and move it over `path`: a crash leaves the old
    file or the new one, never half of one; a failure (even a Ctrl-C) removes the temporary file."""
    tmp_path = path.with_name(path.name + ".tmp")
    opened = False
    try:
        with open(tmp_path, "wb") as f:
            opened = True
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if opened:  # ours to remove; a failed open() left whatever was there alone
            try:
                os.unlink(tmp_path)
            except OSError:
                pass
        raise


def releases_for(messages: Iterable[mido.Message | mido.MetaMessage]) -> list[mido.Message]:
    """The note-offs and sustain-pedal ups for what `messages` leave down at their end (a take
    stopped mid-note, a file cut short), so a written file never leaves a note sounding."""
    held: Counter[tuple[int, int]] = Counter()
    pedal_down: set[int] = set()
    for msg in messages:
        if msg.type == "note_on" and msg.velocity > 0:
            held[msg.channel, msg.note] += 1
        elif msg.type in ("note_on", "note_off") and held[msg.channel, msg.note] > 0:
            held[msg.channel, msg.note] -= 1
        elif msg.type == "control_change" and msg.control == SUSTAIN_CC:
            (pedal_down.add if msg.value >= 64 else pedal_down.discard)(msg.channel)
    releases = [mido.Message("note_off", channel=channel, note=note, velocity=0)
                for (channel, note), count in sorted(held.items()) for _ in range(count)]
    return releases + [mido.Message("control_change", channel=channel, control=SUSTAIN_CC, value=0)
                       for channel in sorted(pedal_down)]


def _player_track(name: str, timed: Sequence[tuple[float, mido.Message]], end_tick: int, *,
                  tempo: bool) -> mido.MidiTrack:
    """Delta times come from rounded absolute ticks, so rounding never accumulates."""
    absolute: list[tuple[int, mido.Message | mido.MetaMessage]] = [(0, mido.MetaMessage("track_name", name=name))]
    if tempo:
        absolute.append((0, mido.MetaMessage("set_tempo", tempo=DEFAULT_TEMPO_US)))
    absolute += [(round(t_s * TICKS_PER_S), msg) for t_s, msg in timed]
    absolute += [(end_tick, msg) for msg in releases_for(msg for _, msg in timed)]
    absolute.append((end_tick, mido.MetaMessage("end_of_track")))
    track = mido.MidiTrack()
    last_tick = 0
    for tick, msg in absolute:
        track.append(msg.copy(time=tick - last_tick))
        last_tick = tick
    return track
