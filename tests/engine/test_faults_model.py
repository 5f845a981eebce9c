"""Faults in the model a jam must survive without a hung note: decode raising mid-chunk (on a
fake clock and live) and a stall inside generation, shorter and longer than the lead."""
from __future__ import annotations

import threading
import time

import pytest

from engine.clock import MonotonicClock
from engine.midi.memory import MemoryInputPort
from engine.midi.midifile import TimedMessage
from engine.presets.schema import Preset
from engine.duet.session import Session
from tests.conftest import wait_for
from tests.engine.faults import OutputMessages, assert_clean_end, note_ons, ons_after, simulated

pytestmark = pytest.mark.timeout(180)


class Faulty:
    """Test-only wrapper of a model: counts calls, and raises or sleeps at chosen decode calls
    (numbered from 1 over the model's life). `in_a_row[n - 1]` says how many decodes in a row
    call n made (1: the first after a prefill or extend, >= 3: in the middle of sampling)."""

    def __init__(self, model, *, raise_at=(), sleep_at=(), sleep_s: float = 0.2) -> None:
        self._model = model
        self.raise_at, self.sleep_at, self.sleep_s = set(raise_at), set(sleep_at), sleep_s
        self.decodes = 0
        self.in_a_row: list[int] = []
        self._row = 0
        self.raised = 0
        self.stalled = threading.Event()

    def __getattr__(self, name):
        return getattr(self._model, name)

    def prefill(self, token_ids, cache):
        self._row = 0
        return self._model.prefill(token_ids, cache)

    def extend(self, token_ids, cache):
        self._row = 0
        return self._model.extend(token_ids, cache)

    def decode_one(self, token, cache):
        self.decodes += 1
        self._row += 1
        self.in_a_row.append(self._row)
        if self.decodes in self.raise_at:
            self.raised += 1
            raise RuntimeError(f"decode call {self.decodes} failed (test fault)")
        if self.decodes in self.sleep_at:
            time.sleep(self.sleep_s)
            self.stalled.set()
        return self._model.decode_one(token, cache)


def phrases(count: int, *, first_s: float = 0.2, notes: int = 6, step_s: float = 0.25,
            pause_s: float = 3.0) -> list[TimedMessage]:
    """A performer: `count` short legato lines with a pause after each."""
    out = []
    t_s = first_s
    for k in range(count):
        for i in range(notes):
            pitch = 60 + (3 * k + 2 * i) % 12
            out.append(TimedMessage(t_s + i * step_s, bytes((0x90, pitch, 80))))
            out.append(TimedMessage(t_s + (i + 0.9) * step_s, bytes((0x80, pitch, 0))))
        t_s += notes * step_s + pause_s
    return out


def live(model, tokenizer, *, seed: int, lookahead_s: float):
    """A continuous session on threads and the real clock, started: (session, out, seen events)."""
    clock = MonotonicClock()
    out = OutputMessages(clock)
    seen = []
    session = Session(MemoryInputPort(), out, model, tokenizer, Preset(mode="continuous", lookahead_s=lookahead_s),
                      clock=clock, seed=seed, on_event=seen.append)
    session.start()
    return session, out, seen


# -- the model raising ----------------------------------------------------------------------


@pytest.mark.parametrize("failures", [1, 4], ids=["once", "four-chunks-running"])
def test_model_raising_mid_chunk(tokenizer, playful, failures):
    """Call-and-response on a fake clock: decode raises in the middle of sampling, early in
    the session (and, with four, at the next three decodes too, each in the chunk after).
    Each failure is an event, the answers after it play, and every note that went out is ended."""
    performer = phrases(3)
    probe = Faulty(playful)
    session, out, seen, run = simulated(probe, tokenizer, performer, phrase_gap_s=0.5)
    run(12.0)
    session.stop()
    assert note_ons(out) and probe.decodes > 20
    # The same seed decodes the same tokens up to the failure: fail a decode that has two
    # more before it in the same sampling run, about a quarter of the way in.
    fail_at = next(n for n in range(probe.decodes // 4, probe.decodes + 1) if probe.in_a_row[n - 1] >= 3)

    model = Faulty(playful, raise_at=range(fail_at, fail_at + failures))
    session, out, seen, run = simulated(model, tokenizer, performer, phrase_gap_s=0.5)
    run(12.0)
    failed = [e for e in seen if e.kind == "generation_failed"]
    assert model.raised == failures and len(failed) == failures
    assert "RuntimeError" in failed[0].detail["error"]
    metrics = session.metrics()
    assert metrics.generation_errors == failures and metrics.chunks > failures
    assert "failed" not in [e.kind for e in seen]  # the control loop never broke
    assert len([e for e in seen if e.kind == "ai_phrase_started"]) == 3
    assert ons_after(out, session, failed[-1].t_s) >= 3, "no music after the failure"
    assert_clean_end(session, out)


def test_model_raising_in_a_live_session(tokenizer, playful):
    """The same on threads with the real clock (continuous): errors come back as events from
    the generation thread, the music goes on, stop ends in silence."""
    model = Faulty(playful, raise_at={8, 30, 31})
    session, out, seen = live(model, tokenizer, seed=2, lookahead_s=0.3)
    try:
        assert wait_for(lambda: model.raised == 3, 20), model.decodes
        played = session.metrics().notes_out
        assert wait_for(lambda: session.metrics().notes_out >= played + 3, 20), "no music after the failures"
        assert session.metrics().generation_errors == 3
        assert "failed" not in [e.kind for e in seen]
    finally:
        session.stop()
    assert_clean_end(session, out)


# -- a stall --------------------------------------------------------------------------------


@pytest.mark.parametrize("stall_s", [0.2, 1.0])
def test_a_stall_in_generation_makes_notes_late_never_hung(tokenizer, playful, stall_s):
    """A stall inside decode, live, with the least lookahead (50 ms): the notes it delays
    come late (played at once) or are dropped, none hangs, and the session plays on. A 1 s
    stall outlasts any lead the session keeps, so it must show in the late/dropped counts."""
    model = Faulty(playful, sleep_at={40}, sleep_s=stall_s)
    session, out, seen = live(model, tokenizer, seed=3, lookahead_s=0.05)
    try:
        assert model.stalled.wait(20), f"the stall never came ({model.decodes} decodes)"
        played = session.metrics().notes_out
        assert wait_for(lambda: session.metrics().notes_out >= played + 5, 20), "the session did not recover"
        metrics = session.metrics()
        assert metrics.generation_errors == 0 and "failed" not in [e.kind for e in seen]
        assert metrics.late_notes == 0 or metrics.late_ms_max > 0
        if stall_s >= 1.0:
            assert metrics.late_notes + metrics.dropped_onsets > 0
    finally:
        session.stop()
    assert_clean_end(session, out)
