"""MIDI to audio through FluidSynth (pyfluidsynth over the system's libfluidsynth) with a piano
soundfont: a duet with the performer on the left and the AI on the right, or one stereo mix."""
from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mido

from engine.audio.extra import INSTALL_AUDIO, INSTALL_FLUIDSYNTH, AudioExtraMissing, require
from engine.events import AI, PLAYER_NAMES
from engine.midi.midifile import DRUM_CHANNEL, atomic_write, load_midi_events

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100
TAIL_S = 2.0  # after the last event, so the last chord and the reverb ring out
SOUNDFONT_PLACES = (  # Debian/Ubuntu (fluid-soundfont-gm), Fedora/Arch, Homebrew
    "/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2", "/usr/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2", "/opt/homebrew/share/soundfonts/default.sf2",
)
_BLOCK = 4096  # samples asked of the synth at a time between events
_SYNTH_GAIN = 0.4
PEAK = 0.89  # -1 dBFS
SILENT = 1e-3  # a peak below -60 dBFS is no music to bring up


class Layout(enum.StrEnum):
    SIDES = "sides"  # performer left, AI right (a file without an AI track is mixed)
    MIX = "mix"  # both players in one stereo mix


class RenderError(Exception):
    """A render that cannot be done as asked; `str()` is one line naming what is missing."""


@dataclass(frozen=True)
class Rendered:
    """What `render_midi` wrote: the length in seconds, the layout used and the soundfont."""

    duration_s: float
    layout: Layout
    soundfont: Path


def find_soundfont(given: str | os.PathLike[str] | None = None) -> Path:
    """The soundfont to render with: `given`, or the first of SOUNDFONT_PLACES that exists."""
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise RenderError(f"--soundfont: {path}: no such file")
        return path
    for place in SOUNDFONT_PLACES:
        if Path(place).is_file():
            return Path(place)
    raise RenderError(f"no piano soundfont found (looked for {SOUNDFONT_PLACES[0]} and others): "
                      f"install one with {INSTALL_FLUIDSYNTH}, or give --soundfont FILE.sf2")


def render_midi(midi_path: Path, out_path: Path, *, soundfont: Path, layout: Layout = Layout.SIDES,
                on_progress: Callable[[float, float], None] | None = None) -> Rendered:
    """Render `midi_path` with a grand piano from `soundfont` to `out_path` (WAV or FLAC by its
    suffix, 16-bit stereo at 44.1 kHz), written atomically. Channel 10 (drums) is left out.
    `on_progress(seconds rendered, seconds)` as it goes."""
    np = require("numpy", "rendering")
    soundfile = require("soundfile", "rendering")
    load_midi_events(midi_path, require_notes=False)  # the safe loader first: a bad file is one line
    midi = mido.MidiFile(midi_path)
    players = _players(midi)
    if layout is Layout.SIDES and len(players) < 2:
        layout = Layout.MIX
    duration_s = max([midi.length] + [_length_s(events) for events in players]) + TAIL_S
    total = round(duration_s * SAMPLE_RATE)
    stereo = np.zeros((total, 2), dtype=np.float32)
    for i, events in enumerate(players):
        def progress(done_s: float, i: int = i) -> None:
            if on_progress is not None:
                on_progress((i * duration_s + done_s) / len(players), duration_s)

        audio = _synthesize(events, soundfont, total, progress)  # (total, 2)
        if layout is Layout.MIX:
            stereo += audio
        else:  # the first player (the performer) left, the second right
            stereo[:, i] = audio.mean(axis=1)
    peak = float(np.abs(stereo).max())
    if peak > SILENT:  # FluidSynth's level depends on how many notes sound: set the peak
        stereo *= PEAK / peak
    fmt = "FLAC" if out_path.suffix.lower() == ".flac" else "WAV"
    atomic_write(out_path, lambda f: soundfile.write(f, stereo, SAMPLE_RATE, subtype="PCM_16", format=fmt))
    return Rendered(total / SAMPLE_RATE, layout, soundfont)


def _players(midi: mido.MidiFile) -> list[list[tuple[float, mido.Message]]]:
    """`(t_s, message)` of each player: a jamtui duet's performer and AI tracks apart, any other
    file as one player. Tempo from every track applies to all."""
    names = [next((m.name for m in track if m.type == "track_name"), "") for track in midi.tracks]
    meta = [mido.MidiTrack(m for m in _absolute_meta(track)) for track in midi.tracks]
    groups = [[i for i, name in enumerate(names) if name != PLAYER_NAMES[AI]],
              [i for i, name in enumerate(names) if name == PLAYER_NAMES[AI]]]
    if not groups[1] or PLAYER_NAMES[0] not in names:
        groups = [list(range(len(midi.tracks)))]
    players = []
    for group in groups:
        tracks = [midi.tracks[i] for i in group] + [meta[i] for i in range(len(meta)) if i not in group]
        one = mido.MidiFile(type=0, ticks_per_beat=midi.ticks_per_beat, tracks=[mido.merge_tracks(tracks)])
        t_s, events = 0.0, []
        for msg in one:  # iterating a file gives delta times in seconds, through its tempo map
            t_s += msg.time
            if not msg.is_meta and msg.type in ("note_on", "note_off", "control_change") \
                    and msg.channel != DRUM_CHANNEL:
                events.append((t_s, msg))
        players.append(events)
    return players


def _absolute_meta(track: mido.MidiTrack):
    """The meta messages of `track` (tempo, meter) with delta times that keep their places."""
    carried = 0
    for msg in track:
        if msg.is_meta and msg.type != "end_of_track":
            yield msg.copy(time=msg.time + carried)
            carried = 0
        else:
            carried += msg.time


def _length_s(events: list[tuple[float, mido.Message]]) -> float:
    return events[-1][0] if events else 0.0


def _synthesize(events, soundfont: Path, total: int, progress: Callable[[float], None]):
    """`events` played by one FluidSynth piano: float32 `(total, 2)`."""
    import numpy as np

    fluidsynth = _fluidsynth()
    synth = fluidsynth.Synth(gain=_SYNTH_GAIN, samplerate=float(SAMPLE_RATE))
    try:
        font = synth.sfload(str(soundfont))
        if font < 0:
            raise RenderError(f"{soundfont}: FluidSynth cannot load this soundfont")
        for channel in range(16):
            synth.program_select(channel, font, 0, 0)  # bank 0, preset 0: acoustic grand piano
        out = np.zeros((total, 2), dtype=np.float32)
        done = 0

        def advance_to(sample: int) -> None:
            nonlocal done
            while done < min(sample, total):
                n = min(_BLOCK, min(sample, total) - done)
                block = synth.get_samples(n).reshape(-1, 2)
                out[done:done + n] = block[:n] / 32768.0
                done += n
            progress(done / SAMPLE_RATE)

        for t_s, msg in events:
            advance_to(round(t_s * SAMPLE_RATE))
            if msg.type == "note_on" and msg.velocity > 0:
                synth.noteon(msg.channel, msg.note, msg.velocity)
            elif msg.type in ("note_on", "note_off"):
                synth.noteoff(msg.channel, msg.note)
            else:
                synth.cc(msg.channel, msg.control, msg.value)
        advance_to(total)
        return out
    finally:
        synth.delete()


def _fluidsynth():
    try:
        return require("fluidsynth", "rendering")
    except AudioExtraMissing as exc:
        cause = exc.__cause__
        if isinstance(cause, ImportError) and "FluidSynth library" in str(cause):  # pyfluidsynth, no libfluidsynth
            raise AudioExtraMissing(f"rendering needs the FluidSynth library: install it with {INSTALL_FLUIDSYNTH}") \
                from cause
        raise AudioExtraMissing(f"rendering needs pyfluidsynth: install the audio extra with {INSTALL_AUDIO}") \
            from exc
