"""Transcription measured: held-out piano MIDI rendered to audio with the piano soundfont,
transcribed back, and scored against the MIDI it came from (`engine.audio.accuracy`), with the
speed as seconds of audio per second of compute."""
from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import mido

from engine.audio.accuracy import Accuracy, score_notes
from engine.audio.render import Layout, render_midi
from engine.audio.transcribe import Transcriber, write_transcription
from engine.events import Note
from engine.midi.midifile import load_midi_events, write_player_tracks
from engine.midi.notes import notes_from_events


@dataclass(frozen=True)
class Measured:
    """The scores over all pieces (their notes pooled) and the speed."""

    accuracy: Accuracy
    audio_s: float
    compute_s: float  # wall-clock seconds transcribing
    cpu_s: float  # CPU seconds of this process (all its threads) transcribing
    pieces: int

    @property
    def speed_x(self) -> float:
        return self.audio_s / self.compute_s if self.compute_s > 0 else float("inf")


def clip_midi(source: Path, target: Path, clip_s: float) -> None:
    """The first `clip_s` seconds of `source` (notes and pedals) as a one-player file at `target`;
    what still sounds at the cut comes up there."""
    kept = [(e.t_s, mido.Message.from_bytes(e.data)) for e in load_midi_events(source) if e.t_s < clip_s]
    kept = [(t_s, msg) for t_s, msg in kept if msg.type in ("note_on", "note_off", "control_change")]
    end_s = min(clip_s, max((t for t, _ in kept), default=0.0) + 1.0)
    write_player_tracks(target, [kept, []], end_s)  # which lifts what still sounds at end_s


def write_passage(path: Path, seconds: float, seed: int = 0) -> None:
    """A seeded piano passage of `seconds` as a one-player file at `path`: single notes and chords of
    two or three (pitches 36-96, velocities 30-110) every 0.15-0.6 s, some held, the sustain pedal
    pressed for two seconds in every four. For a bench that needs no corpus."""
    rng = random.Random(seed)
    timed: list[tuple[float, int, mido.Message]] = []
    t_s = 0.3
    while t_s < seconds - 1.0:
        for pitch in rng.sample(range(36, 97), rng.choice((1, 1, 2, 3))):
            length_s = rng.choice((0.1, 0.2, 0.3, 0.5, 1.0))
            timed.append((t_s, 1, mido.Message("note_on", note=pitch, velocity=rng.randint(30, 110))))
            timed.append((min(t_s + length_s, seconds), 0, mido.Message("note_off", note=pitch, velocity=0)))
        t_s += rng.uniform(0.15, 0.6)
    for down_s in range(2, int(seconds) - 2, 4):
        timed.append((down_s, 1, mido.Message("control_change", control=64, value=127)))
        timed.append((down_s + 2, 0, mido.Message("control_change", control=64, value=0)))
    timed.sort(key=lambda item: (item[0], item[1]))
    write_player_tracks(path, [[(t, msg) for t, _order, msg in timed], []], seconds)


def measure(midi_files: Sequence[Path], transcriber: Transcriber, soundfont: Path, *, clip_s: float = 30.0,
            on_progress: Callable[[float, float], None] | None = None) -> Measured:
    """Each file's first `clip_s` seconds rendered, transcribed and scored; every note pooled."""
    reference, estimated = [], []
    audio_s = compute_s = cpu_s = 0.0
    offset_s = 0.0  # pieces laid end to end, so notes of one never match another's
    with tempfile.TemporaryDirectory(prefix="jamtui-audio-measure-") as tmp:
        for i, source in enumerate(midi_files):
            clip, wav, out = Path(tmp) / f"{i}.mid", Path(tmp) / f"{i}.wav", Path(tmp) / f"{i}-transcribed.mid"
            clip_midi(source, clip, clip_s)
            rendered = render_midi(clip, wav, soundfont=soundfont, layout=Layout.MIX)
            started, cpu_started = time.perf_counter(), time.process_time()
            result = transcriber.transcribe(wav)
            compute_s += time.perf_counter() - started
            cpu_s += time.process_time() - cpu_started
            audio_s += result.duration_s
            write_transcription(out, result)
            for path, into in ((clip, reference), (out, estimated)):
                into += [Note(n.start_s + offset_s, n.end_s + offset_s, n.pitch, n.velocity)
                         for n in notes_from_events(load_midi_events(path))]
            offset_s += rendered.duration_s + 10.0
            if on_progress is not None:
                on_progress(i + 1, len(midi_files))
    return Measured(score_notes(reference, estimated), audio_s, compute_s, cpu_s, len(midi_files))
