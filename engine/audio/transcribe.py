"""Piano recordings to MIDI: a `Transcriber` (the piano model, loaded on first use) turns a sound
file into notes and pedal presses, and `write_transcription` saves them as a one-track MIDI file
with the sustain pedal as CC64 (note ends stay key releases; a reader folds the pedal in)."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mido

from engine.audio.decode import read_audio
from engine.audio.piano_model import MODEL_NAME, PEDAL_CONTROLS, PianoModel, Segmenting
from engine.events import SUSTAIN_CC, Note
from engine.midi.midifile import DEFAULT_TEMPO_US, TICKS_PER_BEAT, TICKS_PER_S, atomic_write

log = logging.getLogger(__name__)

TRACK_NAME = "piano"


@dataclass(frozen=True)
class Pedal:
    """A pedal press: `control` 64 (sustain) or 67 (soft), down from `down_s` to `up_s`."""

    control: int
    down_s: float
    up_s: float


@dataclass(frozen=True)
class Transcription:
    """What the model heard in one recording: notes from key down to key up (the pedal not
    folded in), pedal presses, the recording's length and the compute it took."""

    source: str
    duration_s: float
    notes: tuple[Note, ...]
    pedals: tuple[Pedal, ...]
    model: str
    compute_s: float

    @property
    def speed_x(self) -> float:
        """Seconds of audio per second of compute (above 1: faster than real time)."""
        return self.duration_s / self.compute_s if self.compute_s > 0 else float("inf")


class Transcriber:
    """Transcribes sound files with the piano model on `device` ("cpu", "cuda"), loading it at the
    first file. `segmenting` sets the windows the model sees (see `Segmenting`). One thread at a time."""

    def __init__(self, device: str = "cpu", segmenting: Segmenting | None = None) -> None:
        self.device = device
        self.segmenting = segmenting or Segmenting()
        self._model: PianoModel | None = None

    @property
    def model(self) -> PianoModel:
        if self._model is None:
            started = time.perf_counter()
            self._model = PianoModel(self.device)
            log.info("%s loaded on %s in %.1f s", MODEL_NAME, self.device, time.perf_counter() - started)
        return self._model

    def transcribe(self, path: str | os.PathLike[str],
                   on_progress: Callable[[float, float], None] | None = None) -> Transcription:
        """The notes and pedals of the recording at `path`; `on_progress(seconds done, seconds)`
        as the windows are decoded. Raises `AudioFileError` (one line) for a file it cannot read."""
        model = self.model
        samples = read_audio(path, model.sample_rate)
        duration_s = samples.shape[0] / model.sample_rate
        started = time.perf_counter()
        raw = model.transcribe(samples, self.segmenting, on_progress)
        compute_s = time.perf_counter() - started
        notes, pedals = [], []
        for event in raw:
            start_s, end_s = max(0.0, float(event.start)), min(duration_s, float(event.end))
            if event.pitch > 0:
                notes.append(Note(start_s, max(end_s, start_s), int(event.pitch), min(127, max(1, int(event.velocity)))))
            elif -event.pitch in PEDAL_CONTROLS and end_s > start_s:
                pedals.append(Pedal(-int(event.pitch), start_s, end_s))
        notes.sort(key=lambda n: (n.start_s, n.pitch))
        pedals.sort(key=lambda p: (p.down_s, p.control))
        return Transcription(os.fsdecode(path), duration_s, tuple(notes), tuple(pedals), MODEL_NAME, compute_s)


def write_transcription(path: Path, transcription: Transcription) -> None:
    """A type-0 file at 120 bpm, one track named "piano": the notes on channel 1 and the pedals as
    control changes (CC64 sustain, CC67 soft). Written atomically."""
    timed: list[tuple[int, int, mido.Message]] = []  # (tick, order at that tick, message)
    for n in transcription.notes:
        timed.append((round(n.start_s * TICKS_PER_S), 2, mido.Message("note_on", note=n.pitch, velocity=n.velocity)))
        timed.append((max(round(n.end_s * TICKS_PER_S), round(n.start_s * TICKS_PER_S) + 1), 0,
                      mido.Message("note_off", note=n.pitch, velocity=0)))
    for p in transcription.pedals:
        # at one tick a pedal comes up (0) before notes end and strike, and goes down (1) before the strike
        timed.append((round(p.down_s * TICKS_PER_S), 1, mido.Message("control_change", control=p.control, value=127)))
        timed.append((round(p.up_s * TICKS_PER_S), 0, mido.Message("control_change", control=p.control, value=0)))
    timed.sort(key=lambda item: (item[0], item[1]))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=TRACK_NAME),
                            mido.MetaMessage("set_tempo", tempo=DEFAULT_TEMPO_US)])
    last_tick = 0
    for tick, _order, msg in timed:
        track.append(msg.copy(time=tick - last_tick))
        last_tick = tick
    end_tick = max(last_tick, round(transcription.duration_s * TICKS_PER_S))
    track.append(mido.MetaMessage("end_of_track", time=end_tick - last_tick))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT, tracks=[track])
    atomic_write(path, lambda f: midi.save(file=f))


def sustain_presses(transcription: Transcription) -> int:
    """How many times the sustain pedal (CC64) goes down in `transcription`."""
    return sum(1 for p in transcription.pedals if p.control == SUSTAIN_CC)
