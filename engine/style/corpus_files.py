"""One file of a performer's corpus: what the corpus keeps of a MIDI file, a jamtui recording
(the performer's part, pitched notes and pedals, drums dropped, a cut-short file up to the cut)
or a piano recording (transcribed to MIDI first), and the figures of what it keeps."""
from __future__ import annotations

import enum
import hashlib
import io
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mido

from engine.audio.decode import AudioFileError
from engine.audio.extra import AudioExtraMissing
from engine.audio.piano_model import MODEL_NAME
from engine.audio.transcribe import Transcriber, write_transcription

from engine.events import PERFORMER, PLAYER_NAMES, Note
from engine.midi.midifile import DEFAULT_MAX_BYTES, MidiFileError, load_midi_events, releases_for
from engine.tokens.conditions import estimate_tempo_bpm
from engine.training.midi_files import (
    DRUM_CHANNEL,
    load_midi,
    normalize_midi,
    read_notes,
)

REST_S = 2.0  # a silence at least this long is not playing (density counts notes per second of playing)
_END_OF_TRACK = b"\x00\xff\x2f\x00"


class Kind(enum.StrEnum):
    MIDI = "midi"
    RECORDING = "recording"  # a jamtui two-player file: only the performer's track is kept
    AUDIO = "audio"  # a sound file, transcribed to MIDI (notes and sustain pedal) on the way in


@dataclass(frozen=True)
class KeptFile:
    """What the corpus stores of one source file, with its figures."""

    data: bytes  # a type-1 MIDI file: one pitched part per track, tempo and meter, pedals
    sha256: str  # of `data`: two sources that keep the same music are duplicates
    kind: Kind
    duration_s: float  # to the last note's end
    playing_s: float  # the time notes sound, silences of REST_S or more left out
    n_notes: int
    pitch_range: tuple[int, int]
    tempo_bpm: float | None  # a pulse estimate (engine.tokens.conditions.estimate_tempo_bpm)
    warnings: tuple[str, ...]
    transcribed_with: str | None = None  # the model that transcribed a sound file


def keep_file(path: Path, scratch: Path) -> KeptFile:
    """What the corpus keeps of the MIDI file `path`, using the folder `scratch` for files of its own.

    Raises `MidiFileError` naming `path` when nothing of it can be used: unreadable, not MIDI,
    no notes, drums only, or no notes from the performer in a recording."""
    readable, cut = _readable(path, scratch)
    return _kept(str(path), readable, cut, scratch)


def keep_recording(path: Path, scratch: Path, transcriber: Transcriber,
                   on_progress: Callable[[float, float], None] | None = None) -> KeptFile:
    """What the corpus keeps of the sound file `path` (engine.audio.decode.AUDIO_SUFFIXES): its
    transcription by `transcriber` (notes and sustain pedal), kept as `keep_file` keeps a MIDI file;
    `on_progress(seconds done, seconds)` as it is transcribed. Raises `MidiFileError` naming `path`
    when it cannot be decoded, the audio extra is missing, or no note is heard."""
    return _kept(str(path), _transcribed(path, scratch, transcriber, on_progress), None, scratch,
                 transcribed_with=MODEL_NAME)


def _kept(shown: str, readable: Path, cut: str | None, scratch: Path, *,
          transcribed_with: str | None = None) -> KeptFile:
    """The kept file and figures of the MIDI file `readable`, read for the source `shown`."""
    midi = _reporting_as(shown, load_midi, readable)
    kind = Kind.AUDIO if transcribed_with else Kind.RECORDING if _is_recording(midi) else Kind.MIDI
    if kind is Kind.RECORDING:
        midi = _performer_only(midi)
    pitched, drums = _note_counts(midi)
    if not pitched:
        if drums:
            raise MidiFileError(shown, "drums only (channel 10)")
        if cut:
            raise MidiFileError(shown, f"{cut}, and no notes before the cut")
        raise MidiFileError(shown, "no notes in the performer's track" if kind is Kind.RECORDING else "contains no notes")
    normalized, _names = _reporting_as(shown, normalize_midi, midi, "parts", shown)
    _release_held(normalized)
    buffer = io.BytesIO()
    normalized.save(file=buffer)
    data = buffer.getvalue()
    kept_path = scratch / "kept.mid"
    kept_path.write_bytes(data)
    notes = [n for track in _reporting_as(shown, read_notes, kept_path) for n in track]
    duration_s = max(n.end_s for n in notes)
    warnings = []
    if drums:
        warnings.append(f"ignored {drums} drum note{'s' if drums != 1 else ''} on channel 10")
    if cut:
        warnings.append(f"{cut}: kept the notes up to {duration_s:.2f} s")
    return KeptFile(data=data, sha256=hashlib.sha256(data).hexdigest(), kind=kind, duration_s=duration_s,
                    playing_s=playing_s(notes), n_notes=len(notes),
                    pitch_range=(min(n.pitch for n in notes), max(n.pitch for n in notes)),
                    tempo_bpm=estimate_tempo_bpm([n.start_s for n in notes]), warnings=tuple(warnings),
                    transcribed_with=transcribed_with)


def playing_s(notes: list[Note]) -> float:
    """Seconds in which notes sound, counting a silence shorter than REST_S as playing."""
    total, start, end = 0.0, None, None
    for n in sorted(notes, key=lambda n: n.start_s):
        if end is not None and n.start_s - end < REST_S:
            end = max(end, n.end_s)
            continue
        if end is not None:
            total += end - start
        start, end = n.start_s, n.end_s
    return total + (end - start if end is not None else 0.0)


# --- reading -------------------------------------------------------------------------------

def _transcribed(path: Path, scratch: Path, transcriber: Transcriber,
                 on_progress: Callable[[float, float], None] | None) -> Path:
    """The transcription of the sound file `path`, written in `scratch` (notes and CC64 pedal)."""
    try:
        transcription = transcriber.transcribe(path, on_progress)
    except AudioFileError as exc:
        raise MidiFileError(str(path), exc.reason) from exc
    except AudioExtraMissing as exc:
        raise MidiFileError(str(path), str(exc)) from exc
    target = scratch / "transcribed.mid"
    write_transcription(target, transcription)
    return target


def _readable(path: Path, scratch: Path) -> tuple[Path, str | None]:
    """`(a path to read, None)` for a sound file; for one cut short, a repaired copy in `scratch`
    and what was cut. Any other failure is the safe loader's `MidiFileError`."""
    try:
        load_midi_events(path, require_notes=False)
        return path, None
    except MidiFileError as exc:
        failure = exc
    try:
        with open(path, "rb") as f:
            data = f.read(DEFAULT_MAX_BYTES + 1)
    except OSError:
        raise failure from None
    repaired, cut = _up_to_the_cut(data)
    if cut is None:
        raise failure
    repaired_path = scratch / "repaired.mid"
    repaired_path.write_bytes(repaired)
    _reporting_as(str(path), load_midi_events, repaired_path, require_notes=False)
    return repaired_path, cut


def _up_to_the_cut(data: bytes) -> tuple[bytes, str | None]:
    """A file whose last track chunk ends early (a recording cut short), repaired: that track
    ends after its last whole message and the header counts the tracks there are. `(data,
    None)` when nothing was cut or nothing can be saved; the safe loader then says why."""
    if data[:4] != b"MThd" or len(data) < 14:
        return data, None
    header_len, fmt, n_tracks, division = struct.unpack(">LHHH", data[4:14])
    pos, chunks, cut = 8 + header_len, [], None
    while len(chunks) < n_tracks:
        if pos + 8 > len(data):
            plural = "s" if n_tracks != 1 else ""
            cut = f"truncated MIDI file (header says {n_tracks} track{plural}, found {len(chunks)})"
            if pos < len(data):
                cut = f"truncated MIDI file (track {len(chunks) + 1} ends early)"
            break
        chunk_id, length = struct.unpack(">4sL", data[pos:pos + 8])
        body_end = pos + 8 + length
        if body_end > len(data):
            cut = f"truncated MIDI file (track {len(chunks) + 1} ends early)"
            if chunk_id == b"MTrk":
                body = _whole_messages(data[pos + 8:]) + _END_OF_TRACK
                chunks.append(b"MTrk" + struct.pack(">L", len(body)) + body)
            break
        if chunk_id == b"MTrk":
            chunks.append(data[pos:body_end])
        pos = body_end
    if cut is None or not chunks or header_len < 6 or fmt > 1:
        return data, None
    header = b"MThd" + struct.pack(">LHHH", 6, fmt, len(chunks), division)
    return header + b"".join(chunks), cut


def _whole_messages(body: bytes) -> bytes:
    """The bytes of a track body up to the end of its last whole event."""
    pos = whole = 0
    running = None
    while True:
        pos = _after_varlen(body, pos)
        if pos is None or pos >= len(body):
            return body[:whole]
        status = body[pos]
        if status == 0xFF:  # meta: type, length, data
            end = _after_varlen(body, pos + 2) if pos + 2 <= len(body) else None
            end = None if end is None else end + _varlen(body, pos + 2)
        elif status in (0xF0, 0xF7):  # sysex: length, data
            end = _after_varlen(body, pos + 1)
            end = None if end is None else end + _varlen(body, pos + 1)
        else:
            if status >= 0x80:
                running, pos = status, pos + 1
            elif running is None:
                return body[:whole]  # data with no status: nothing more can be read
            end = pos + (1 if running & 0xF0 in (0xC0, 0xD0) else 2)
        if end is None or end > len(body):
            return body[:whole]
        pos = whole = end


def _after_varlen(data: bytes, pos: int) -> int | None:
    """Where the variable-length quantity at `pos` ends; None when the data ends first."""
    for i in range(pos, min(pos + 4, len(data))):
        if data[i] < 0x80:
            return i + 1
    return None


def _varlen(data: bytes, pos: int) -> int:
    value = 0
    for byte in data[pos:pos + 4]:
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value


def _reporting_as(shown: str, read, *args, **kwargs):
    """Call `read`; a `MidiFileError` it raises names the source file `shown`, not our copy."""
    try:
        return read(*args, **kwargs)
    except MidiFileError as exc:
        raise MidiFileError(shown, exc.reason) from exc


# --- what is kept --------------------------------------------------------------------------

def _track_names(midi: mido.MidiFile) -> list[str]:
    return [next((msg.name for msg in track if msg.type == "track_name"), "") for track in midi.tracks]


def _is_recording(midi: mido.MidiFile) -> bool:
    """A jamtui two-player file (engine.midi.midifile.write_player_tracks: recordings, duets):
    its tracks are named after the players, the performer's first. One cut short may have lost
    the AI's track."""
    names = _track_names(midi)
    return 1 <= len(names) <= len(PLAYER_NAMES) and names == list(PLAYER_NAMES[:len(names)])


def _performer_only(midi: mido.MidiFile) -> mido.MidiFile:
    """The performer's track whole; of the others only their meta messages (tempo, meter)."""
    tracks = [track if i == PERFORMER else _meta_only(track) for i, track in enumerate(midi.tracks)]
    return mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat, tracks=tracks)


def _meta_only(track: mido.MidiTrack) -> mido.MidiTrack:
    kept, carried = mido.MidiTrack(), 0
    for msg in track:
        if msg.is_meta:
            kept.append(msg.copy(time=msg.time + carried))
            carried = 0
        else:
            carried += msg.time
    return kept


def _note_counts(midi: mido.MidiFile) -> tuple[int, int]:
    """(pitched notes, drum notes): sounding note-ons off and on channel 10."""
    counts = Counter(msg.channel == DRUM_CHANNEL for track in midi.tracks for msg in track
                     if msg.type == "note_on" and msg.velocity > 0)
    return counts[False], counts[True]


def _release_held(midi: mido.MidiFile) -> None:
    """Notes still held and pedals still down at the end (a file cut short) come up where the
    file ends, so a stored file never leaves a note sounding."""
    end_tick = max((sum(msg.time for msg in track) for track in midi.tracks), default=0)
    for track in midi.tracks:
        releases = releases_for(track)
        gap = end_tick - sum(msg.time for msg in track)
        for i, msg in enumerate(releases):
            track.append(msg.copy(time=gap if i == 0 else 0))
