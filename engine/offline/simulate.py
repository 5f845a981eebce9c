"""`jamtui simulate`: a whole duet on a fake clock, faster than real time, with a report.

The performer is a MIDI file (looped to the length asked); the model's compute time is
still measured for real, so response latencies and the real-time factor are honest.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

from engine.clock import FakeClock
from engine.duet.jam import model_key
from engine.duet.prime import read_prime
from engine.duet.session import Session
from engine.events import Kind
from engine.midi.file_input import FilePlayerPort
from engine.midi.memory import MemoryOutputPort
from engine.midi.recorder import SessionRecorder
from engine.model.cache import LoadedModel, describe_device
from engine.offline.review import read_duet, review


def stuck_notes(port: MemoryOutputPort) -> int:
    """Note-ons the output never ended (what a synth would keep sounding)."""
    sounding: dict[tuple[int, int], int] = {}
    for event in port.events:
        key = (event.channel, event.number)
        if event.kind is Kind.NOTE_ON:
            sounding[key] = sounding.get(key, 0) + 1
        elif event.kind is Kind.NOTE_OFF and sounding.get(key):
            sounding[key] = 0
    return sum(1 for count in sounding.values() if count)


def simulate(performer: Path, model, tokenizer, preset, out: Path, *, minutes: float | None = None,
             seed: int = 0, step_s: float = 0.01, on_progress: Callable[[float, float], None] | None = None) -> dict:
    """Run the duet and write it to `out` (two tracks: performer, ai); returns the report. Raises
    PresetError for a prime phrase that cannot be read, before anything is written. The report's
    `model` and `adapters` name what `preset` plays (its checkpoint and styles, `--style` applied),
    which `model` is expected to have been loaded from. `on_progress(done_s, length_s)` is called as
    the virtual clock goes (about every 10 s of music)."""
    read_prime(preset)
    path, adapters = model_key(preset)
    played = LoadedModel(path, model, tokenizer, 0.0, describe_device(model), adapters)
    clock = FakeClock()
    player = FilePlayerPort.from_file(performer, clock, loop=minutes is not None)
    sink = MemoryOutputPort(clock, name="simulated synth")
    work = out.parent / f".{out.stem}-recording"
    recorder = SessionRecorder(work, clock, meta={"performer": str(performer), "preset": preset.name}, name=out.stem)
    try:  # the work folder goes whatever happens: a failure leaves nothing next to `out`
        recorder.start()
        try:
            session = Session(player, sink, model, tokenizer, preset, clock=clock, recorder=recorder, seed=seed)
        except BaseException:
            recorder.close()
            raise
        length_s = minutes * 60 if minutes is not None else player.duration_s + 5.0
        started = time.perf_counter()
        segments = []
        try:
            # In segments, so a long run shows whether memory or latency drifts.
            segment_s = max(60.0, length_s / 12)
            t_s = 0.0
            while t_s < length_s:
                from_s, t_s = t_s, min(t_s + segment_s, length_s)
                before = session.metrics()
                seen = len(session.response_samples_ms())
                _run_reporting(session, player, from_s, t_s, step_s, length_s, on_progress)
                segments.append(_segment(session, before, seen, t_s))
        finally:
            session.stop()
            paths = recorder.close()
        wall_s = time.perf_counter() - started
        shutil.move(paths.midi_path, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    metrics = session.metrics()
    performer_notes, ai_notes = read_duet(out)
    return {
        "performer": str(performer),
        "preset": preset.name,
        "model": played.label,
        "adapters": [{"path": str(adapter), "weight": weight} for adapter, weight in played.adapters],
        "mode": metrics.mode,
        "music_s": round(length_s, 3),
        "wall_s": round(wall_s, 3),
        "performer_notes": metrics.notes_in,
        "ai_notes": metrics.notes_out,
        "stuck_notes": stuck_notes(sink),
        "response_ms_p50": metrics.response_latency_ms_p50,
        "response_ms_p99": metrics.response_latency_ms_p99,
        "responses": metrics.responses,
        "echo_rate": metrics.echo_rate,
        "ai_phrases": metrics.ai_phrases,
        "entry_compute_ms_p50": metrics.entry_compute_ms_p50,
        "prepare_ms": round(metrics.prepare_ms, 1),
        "rtf": metrics.rtf,
        "dropped_onsets": metrics.dropped_onsets,
        "late_notes": metrics.late_notes,
        "revisions": metrics.revisions,
        "generation_errors": metrics.generation_errors,
        "chunks": metrics.chunks,
        "rss_mb_first": segments[0]["rss_mb"] if segments else None,
        "rss_mb_last": segments[-1]["rss_mb"] if segments else None,
        "segments": segments,
        "music": review(performer_notes, ai_notes, metrics.mode),
    }


def _run_reporting(session: Session, player: FilePlayerPort, from_s: float, until_s: float, step_s: float,
                   length_s: float, on_progress: Callable[[float, float], None] | None, every_s: float = 10.0) -> None:
    """`session.run_simulated` from `from_s` to `until_s`, in steps of `every_s` music seconds when
    progress is wanted."""
    if on_progress is None:
        session.run_simulated(until_s, pump=player.pump, step_s=step_s)
        return
    done_s = from_s
    while True:
        done_s = min(done_s + every_s, until_s)
        session.run_simulated(done_s, pump=player.pump, step_s=step_s)
        on_progress(done_s, length_s)
        if done_s >= until_s:
            return


def _segment(session: Session, before, seen: int, t_s: float) -> dict:
    """One stretch of a long run: memory, compute per chunk and responses in it."""
    after = session.metrics()
    chunks = after.chunks - before.chunks
    responses = session.response_samples_ms()[seen:]
    return {
        "until_s": round(t_s, 1),
        "rss_mb": round(_rss_mb(), 1),
        "chunks": chunks,
        "ai_notes": after.notes_out - before.notes_out,
        "chunk_compute_ms_mean": round(1000 * session.compute_s_since(before) / chunks, 2) if chunks else None,
        "response_ms_max": round(max(responses), 3) if responses else None,
        "lateness_ms_p99": after.lateness_ms_p99,
    }


def _rss_mb() -> float:
    """Resident memory of this process now (Linux /proc; the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
