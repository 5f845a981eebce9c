"""The live duet under the clock: cue-to-first-note latency and scheduler lateness while the
model generates, measured on a real `Session` (threads, monotonic clock, in-memory ports).

A performer thread plays short phrases into the session, stops for the preset's phrase gap,
and waits for the AI's answer; it plays its next phrase into the answer, so every trial also
exercises a yield. The cue is the moment the phrase gap ends (last key up + phrase_gap_s),
taken from the performer's own send times, and the first note is the AI's first note-on
as the output port received it, on the same clock.
"""
from __future__ import annotations

import random
import time
from dataclasses import replace

from engine.clock import MonotonicClock
from engine.metrics import percentile
from engine.midi.memory import MemoryInputPort, MemoryOutputPort

MS = 1_000_000


def bench_jam(model, tokenizer, preset, *, cues: int = 20, seed: int = 0, note_s: float = 0.14,
              answer_wait_s: float = 2.0) -> dict[str, float | int]:
    """first_note_ms_p50/p99/max over `cues` phrase ends, and the scheduler's lateness while
    the model generated (gen_lateness_ms_p50/p99/max)."""
    from engine.session import Session

    preset = replace(preset, mode="call-and-response")
    clock = MonotonicClock()
    inp, out = MemoryInputPort("bench in"), MemoryOutputPort(clock, name="bench out")
    session = Session(inp, out, model, tokenizer, preset, clock=clock, seed=seed)
    rng = random.Random(seed)
    first_ns: list[int] = []
    missed = 0
    session.start()
    try:
        time.sleep(0.3)  # threads up, model warm
        for _ in range(cues):
            root = rng.choice((55, 57, 60, 62))
            last_off_ns = 0
            for pitch in (root, root + 4, root + 7, root + rng.choice((9, 11, 12))):
                on_ns = clock.now_ns()
                inp.feed(bytes((0x90, pitch, 80)), on_ns)
                _sleep_until(clock, on_ns + int(note_s * 0.9 * 1e9))
                last_off_ns = clock.now_ns()
                inp.feed(bytes((0x80, pitch, 0)), last_off_ns)
                _sleep_until(clock, on_ns + int(note_s * 1e9))
            cue_ns = last_off_ns + int(preset.phrase_gap_s * 1e9)
            answer = _wait_first_note_on(out, clock, after_ns=cue_ns - 50 * MS, until_ns=cue_ns + int(answer_wait_s * 1e9))
            if answer is None:
                missed += 1
            else:
                first_ns.append(max(0, answer - cue_ns))
                _sleep_until(clock, answer + 200 * MS)  # let it play a little, then cut in
    finally:
        session.stop()
    metrics = session.metrics()
    lateness = session.scheduler.stats()
    samples = [v / MS for v in first_ns]
    return {
        "first_note_cues": cues,
        "first_note_missed": missed,
        "first_note_ms_p50": round(percentile(samples, 50), 3) if samples else float("nan"),
        "first_note_ms_p99": round(percentile(samples, 99), 3) if samples else float("nan"),
        "first_note_ms_max": round(max(samples), 3) if samples else float("nan"),
        "first_chunk_compute_ms_p50": round(metrics.first_chunk_ms_p50, 3),
        "turn_prepare_ms": round(metrics.prepare_ms, 1),
        "gen_lateness_ms_p50": round(lateness.lateness_ms_p50, 3),
        "gen_lateness_ms_p99": round(lateness.lateness_ms_p99, 3),
        "gen_lateness_ms_max": round(lateness.lateness_ms_max, 3),
        "gen_sent_events": lateness.sent,
    }


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
