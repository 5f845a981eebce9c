"""The live duet under the clock: cue-to-first-note latency and scheduler lateness while the
model generates, measured on a real jam (`Jam`: threads, monotonic clock, in-memory ports).

A performer thread plays short phrases into the jam, pauses, and waits for the AI's answer;
it plays its next phrase into the answer, so every trial also exercises a yield. The cue is
the moment the phrase's gap ends (last key up + `phrase_gap_s` of what it played), taken
from the performer's own send times, and the first note is the AI's first note-on
as the output port received it, on the same clock.
"""
from __future__ import annotations

import random
import time
from dataclasses import replace

from engine.clock import MonotonicClock
from engine.metrics import percentile
from engine.midi.memory import MemoryInputPort, MemoryOutputPort
from engine.duet.jam import Jam
from engine.duet.turns import phrase_gap_s
from engine.events import Note
from engine.model.cache import ModelCache
from engine.presets.schema import Handover, Mode

MS = 1_000_000


def bench_jam(model, tokenizer, preset, *, cues: int = 20, seed: int = 0) -> dict[str, float | int]:
    """first_note_ms_p50/p99/max over `cues` phrase ends (the cue: last key up + the phrase's
    gap, `engine.duet.turns.phrase_gap_s`, predicted, so the answer is generated before it) and handover_ms_* over `cues // 2`
    hand-over key presses (not predictable: the first note is streamed out as soon as its
    tokens are sampled); the scheduler's lateness while the model generated."""
    phrase_end = replace(preset, mode=Mode.CALL_AND_RESPONSE, handover=None)
    first, lateness, metrics = _trials(model, tokenizer, phrase_end, cues, seed, handover_key=None)
    keyed = replace(preset, mode=Mode.CALL_AND_RESPONSE, phrase_gap_s=8.0, handover=Handover(kind="note", number=21))
    handover, _, _ = _trials(model, tokenizer, keyed, max(1, cues // 2), seed + 1, handover_key=21)
    return {
        "first_note_cues": cues,
        **_summary("first_note", first, cues),
        "entry_compute_ms_p50": round(metrics.entry_compute_ms_p50, 3),
        "turn_prepare_ms": round(metrics.prepare_ms, 1),
        **_summary("handover", handover, max(1, cues // 2)),
        "gen_lateness_ms_p50": round(lateness.lateness_ms_p50, 3),
        "gen_lateness_ms_p99": round(lateness.lateness_ms_p99, 3),
        "gen_lateness_ms_max": round(lateness.lateness_ms_max, 3),
        "gen_sent_events": lateness.sent,
    }


def _summary(prefix: str, samples_ns: list[int], asked: int) -> dict[str, float | int]:
    ms = [v / MS for v in samples_ns]
    nan = float("nan")
    return {
        f"{prefix}_missed": asked - len(ms),
        f"{prefix}_ms_p50": round(percentile(ms, 50), 3) if ms else nan,
        f"{prefix}_ms_p99": round(percentile(ms, 99), 3) if ms else nan,
        f"{prefix}_ms_max": round(max(ms), 3) if ms else nan,
    }


def _trials(model, tokenizer, preset, cues: int, seed: int, *, handover_key: int | None, note_s: float = 0.14,
            answer_wait_s: float = 2.0):
    """Play `cues` phrases into a live jam (the `Jam` both faces drive) on in-memory ports;
    (cue-to-first-note samples in ns, scheduler stats, session metrics)."""
    clock = MonotonicClock()
    inp, out = MemoryInputPort("bench in"), MemoryOutputPort(clock, name="bench out")
    jam = Jam(preset, clock=clock, port_opener=lambda _in, _out, _clock: (inp, out),
              models=ModelCache(lambda _path: (model, tokenizer)), seed=seed)
    rng = random.Random(seed)
    waited: list[int] = []
    jam.start()
    try:
        time.sleep(0.3)  # threads up, model warm
        for _ in range(cues):
            root = rng.choice((55, 57, 60, 62))
            last_off_ns = 0
            played: list[Note] = []
            for pitch in (root, root + 4, root + 7, root + rng.choice((9, 11, 12))):
                on_ns = clock.now_ns()
                inp.feed(bytes((0x90, pitch, 80)), on_ns)
                _sleep_until(clock, on_ns + int(note_s * 0.9 * 1e9))
                last_off_ns = clock.now_ns()
                inp.feed(bytes((0x80, pitch, 0)), last_off_ns)
                played.append(Note(on_ns / 1e9, last_off_ns / 1e9, pitch, 80))
                _sleep_until(clock, on_ns + int(note_s * 1e9))
            if handover_key is None:
                # The phrase ends a pause after the last key up: the preset's gap, or less for this pulse.
                cue_ns = last_off_ns + int(phrase_gap_s(played, preset.phrase_gap_s) * 1e9)
            else:
                _sleep_until(clock, clock.now_ns() + 100 * MS)
                cue_ns = clock.now_ns()
                inp.feed(bytes((0x90, handover_key, 64)), cue_ns)
                inp.feed(bytes((0x80, handover_key, 0)), cue_ns + 50 * MS)
            answer = _wait_first_note_on(out, clock, after_ns=cue_ns - 50 * MS, until_ns=cue_ns + int(answer_wait_s * 1e9))
            if answer is not None:
                waited.append(max(0, answer - cue_ns))
                _sleep_until(clock, answer + 200 * MS)  # let it play a little, then cut in
    finally:
        summary = jam.stop()
    return waited, summary.output, summary.metrics


def _sleep_until(clock: MonotonicClock, t_ns: int) -> None:
    """Plain sleep: the performer's timing need not be exact (its real send times count)."""
    time.sleep(max(0.0, (t_ns - clock.now_ns()) / 1e9))


def _wait_first_note_on(out: MemoryOutputPort, clock: MonotonicClock, *, after_ns: int, until_ns: int) -> int | None:
    """Send time of the first AI note-on at or after `after_ns`, polling until `until_ns`."""
    seen = 0
    while clock.now_ns() < until_ns:
        events = out.events
        for event in events[seen:]:
            if event.is_note_on and event.t_ns >= after_ns:
                return event.t_ns
        seen = len(events)
        time.sleep(0.001)
    return None
