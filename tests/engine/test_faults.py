"""Faults a jam must survive without a hung note: the model raising mid-chunk, a stall inside
generation, the output port vanishing and coming back, and Ctrl-C at any moment."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time

import pytest

from engine.clock import FakeClock, MonotonicClock, s_to_ns
from engine.midi.base import PortError
from engine.midi.memory import MemoryInputPort, MemoryOutputPort
from engine.midi.midifile import TimedMessage
from engine.midi.player import FilePlayerPort
from engine.presets import Preset
from engine.session import Session
from engine.tokenizer import JamTokenizer
from tests.conftest import REPO, wait_for
from tests.engine.test_session import Playful
from tests.jack_clients import (
    JamtuiProc,
    RecordingClient,
    describe,
    ends_in_silence,
    is_note_on,
    unbalanced,
    write_performance,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def tokenizer():
    return JamTokenizer()


@pytest.fixture(scope="module")
def playful(tiny_checkpoint, tokenizer):
    """The tiny real model, nudged to play notes often (see test_session.Playful)."""
    from engine.model.checkpoint import load_checkpoint

    return Playful(load_checkpoint(tiny_checkpoint, warmup=False).model, tokenizer)


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


class OutputMessages(MemoryOutputPort):
    """A memory output that can vanish: while `gone`, send raises PortError as a real port
    that lost its device does; it keeps only what was delivered, as raw tuples."""

    def __init__(self, clock) -> None:
        super().__init__(clock, name="flaky out")
        self.gone = False
        self.failed = 0

    def send(self, message: bytes) -> None:
        if self.gone:
            self.failed += 1
            raise PortError("MIDI output port 'flaky out' is disconnected")
        super().send(message)

    def messages(self) -> list[tuple[int, ...]]:
        return [tuple(e.to_bytes()) for e in self.events]


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


def simulated(model, tokenizer, performer: list[TimedMessage], *, mode="call-and-response", seed=1, **preset_kw):
    clock = FakeClock(start_ns=s_to_ns(50.0))
    player = FilePlayerPort(performer, clock) if performer else None
    out = OutputMessages(clock)
    seen = []
    session = Session(player or MemoryInputPort(), out, model, tokenizer, Preset(mode=mode, **preset_kw),
                      clock=clock, seed=seed, on_event=seen.append)
    pump = player.pump if player is not None else None
    return session, out, seen, (lambda until_s: session.run_simulated(until_s, pump=pump))


def note_ons(out: OutputMessages) -> list:
    return [e for e in out.events if e.is_note_on]


def ons_after(out: OutputMessages, session: Session, t_s: float) -> int:
    return sum(1 for e in out.events if e.is_note_on and e.t_ns > session.start_ns + s_to_ns(t_s))


def assert_clean_end(session: Session, out: OutputMessages) -> None:
    session.stop()
    assert not session.scheduler.sounding()
    messages = out.messages()
    assert unbalanced(messages) == [], describe(messages)
    assert ends_in_silence(messages), describe(messages)


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
    clock = MonotonicClock()
    out = OutputMessages(clock)
    seen = []
    session = Session(MemoryInputPort(), out, model, tokenizer, Preset(mode="continuous", lookahead_s=0.3),
                      clock=clock, seed=2, on_event=seen.append)
    session.start()
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


def test_a_stall_in_generation_makes_notes_late_never_hung(tokenizer, playful):
    """A 200 ms stall inside decode, live, with the least lookahead (50 ms): the chunk's first
    notes come late (played at once) or are dropped, none hangs, and the session plays on."""
    model = Faulty(playful, sleep_at={40}, sleep_s=0.2)
    clock = MonotonicClock()
    out = OutputMessages(clock)
    seen = []
    session = Session(MemoryInputPort(), out, model, tokenizer, Preset(mode="continuous", lookahead_s=0.05),
                      clock=clock, seed=3, on_event=seen.append)
    session.start()
    try:
        assert model.stalled.wait(20), f"the stall never came ({model.decodes} decodes)"
        played = session.metrics().notes_out
        assert wait_for(lambda: session.metrics().notes_out >= played + 5, 20), "the session did not recover"
        assert session.metrics().generation_errors == 0 and "failed" not in [e.kind for e in seen]
    finally:
        session.stop()
    assert_clean_end(session, out)


def test_a_stall_longer_than_the_lead_is_counted(tokenizer, playful):
    """A 1 s stall outlasts any lead the session keeps: the notes it delays are played at
    once (counted as late, with how late) or dropped, and still none hangs."""
    model = Faulty(playful, sleep_at={40}, sleep_s=1.0)
    clock = MonotonicClock()
    out = OutputMessages(clock)
    session = Session(MemoryInputPort(), out, model, tokenizer, Preset(mode="continuous", lookahead_s=0.05),
                      clock=clock, seed=3)
    session.start()
    try:
        assert model.stalled.wait(20), f"the stall never came ({model.decodes} decodes)"
        played = session.metrics().notes_out
        assert wait_for(lambda: session.metrics().notes_out >= played + 5, 20), "the session did not recover"
        metrics = session.metrics()
        assert metrics.late_notes + metrics.dropped_onsets > 0
        assert metrics.late_notes == 0 or metrics.late_ms_max > 0
    finally:
        session.stop()
    assert_clean_end(session, out)


class BrokenDriver(MemoryOutputPort):
    """An output whose driver raises something other than PortError (a bug in it, say)."""

    def __init__(self, clock, after: int) -> None:
        super().__init__(clock, name="broken out")
        self.after = after

    def send(self, message: bytes) -> None:
        if len(self.events) >= self.after:
            raise RuntimeError("driver bug")
        super().send(message)


def test_the_output_thread_dying_stops_the_session_and_says_why(tokenizer, playful):
    clock = MonotonicClock()
    out = BrokenDriver(clock, after=6)
    seen = []
    session = Session(MemoryInputPort(), out, playful, tokenizer, Preset(mode="continuous"), clock=clock, seed=3,
                      on_event=seen.append)
    session.start()
    try:
        assert wait_for(lambda: session.error is not None, 20), "the output thread's death went unnoticed"
        assert isinstance(session.error, RuntimeError)
        failed = [e for e in seen if e.kind == "failed"]
        assert len(failed) == 1 and failed[0].detail["where"] == "output"
    finally:
        session.stop()
    assert not session.scheduler.running


# -- the output port vanishing ----------------------------------------------------------------


def sounding_on(messages: list[tuple[int, ...]]) -> set[tuple[int, int]]:
    """Keys a synth on this output would still sound after `messages` (an all-notes-off ends all)."""
    sounding: set[tuple[int, int]] = set()
    for m in messages:
        if is_note_on(m):
            sounding.add((m[0] & 0x0F, m[1]))
        elif len(m) == 3 and (m[0] & 0xF0 == 0x80 or (m[0] & 0xF0 == 0x90 and m[2] == 0)):
            sounding.discard((m[0] & 0x0F, m[1]))
        elif len(m) == 3 and m[0] & 0xF0 == 0xB0 and m[1] == 123:
            sounding = {k for k in sounding if k[0] != m[0] & 0x0F}
    return sounding


@pytest.mark.parametrize("outage", [(2.0, 1.5), (2.5, 0.05), (4.0, 4.5)], ids=["1.5s", "50ms", "back-at-the-end"])
def test_output_port_vanishing_mid_session(tokenizer, playful, outage):
    """Continuous on a fake clock; the output raises PortError for a while (from the first
    message due after `outage[0]` session seconds, for `outage[1]` seconds). The control loop
    goes on; once the port is back nothing sounds on it that the scheduler does not know is
    sounding (an off lost in the outage is sent when it returns), and the end is silent,
    every delivered note-on with its own note-off."""
    session, out, seen, run = simulated(playful, tokenizer, [], mode="continuous", lookahead_s=0.5)
    run(outage[0])
    assert note_ons(out)
    gone_s = (session.scheduler.next_deadline_ns() - session.start_ns) / 1e9 - 0.005
    back_s = gone_s + outage[1]
    run(gone_s)
    out.gone = True
    chunks = session.metrics().chunks
    run(back_s)
    assert out.failed > 0, "nothing was sent during the outage"
    assert back_s - gone_s < 1.0 or session.metrics().chunks > chunks  # generation went on meanwhile
    out.gone = False
    run(back_s + 0.2)
    if outage[1] < 2.0:
        run(back_s + 2.0)
        assert ons_after(out, session, back_s) >= 3, "no music after the port came back"
    # What a synth on the port still sounds is what the scheduler believes sounds.
    assert sounding_on(out.messages()) == session.scheduler.sounding(), describe(out.messages())
    assert "failed" not in [e.kind for e in seen]
    assert_clean_end(session, out)


def test_panic_while_the_port_is_gone_owes_the_note_offs():
    """The scheduler alone: a panic while the port refuses everything loses the silence, so
    the note-offs are owed and go out once the port takes messages again."""
    from engine.midi.scheduler import OutputScheduler

    clock = FakeClock()
    out = OutputMessages(clock)
    scheduler = OutputScheduler(out, clock)
    scheduler.schedule_note(0, s_to_ns(1.0), 60, 90)
    scheduler.schedule_note(0, s_to_ns(2.0), 64, 90)
    scheduler.step(0)
    out.gone = True
    scheduler.panic()
    assert not scheduler.sounding() and out.failed
    clock.set(s_to_ns(0.5))
    out.gone = False
    scheduler.step()
    assert sounding_on(out.messages()) == set(), describe(out.messages())
    scheduler.stop()
    assert unbalanced(out.messages()) == []


@pytest.mark.jack
def test_rtmidi_output_closed_right_after_a_burst_delivers_it(jack_server):
    """The silence at a stop is a burst of ~50 messages, and the port closes right after it:
    a JACK reader must get every message of the burst, in order."""
    from engine.midi.ports import RtMidiOutputPort

    rec = RecordingClient("burst rec")
    try:
        port = RtMidiOutputPort("burst rec", api="jack")
        time.sleep(0.2)  # connected
        burst = [(0xB0 | ch, cc, 0) for cc in (64, 123, 121) for ch in range(16)]
        for message in burst:
            port.send(bytes(message))
        port.close()
        wait_for(lambda: len(rec.snapshot()) >= len(burst), 5)
        time.sleep(0.1)
        assert rec.snapshot() == burst, describe(rec.snapshot(), 60)
    finally:
        rec.close()


RACE = """
import threading, time
from engine.midi.base import PortError
from engine.midi.ports import RtMidiOutputPort

port = RtMidiOutputPort("virtual:race out", api="jack")
stop = threading.Event()
sent = [0, 0]

def sender():
    while not stop.is_set():
        try:
            port.send(bytes((0x90, 60, 1)))
            port.send(bytes((0x80, 60, 0)))
            sent[0] += 2
        except PortError:
            sent[1] += 1

thread = threading.Thread(target=sender)
thread.start()
t0 = time.monotonic()
cycles = 0
while time.monotonic() - t0 < 1.0:
    port.disconnect()  # as the port watcher does when the port vanishes
    port.reopen()
    cycles += 1
stop.set()
thread.join()
port.close()
print("ok", cycles, sent)
"""


@pytest.mark.jack
def test_rtmidi_output_closed_while_sending(jack_server):
    """A real (JACK) output disconnected and reopened while the scheduler's thread sends
    through it: sends fail with PortError, never touch a freed rtmidi object (a segfault)."""
    result = subprocess.run([sys.executable, "-c", RACE], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.startswith("ok"), result.stdout


@pytest.mark.jack
def test_jam_output_vanishes_and_comes_back(jack_server, tmp_path):
    """The synth `jamtui jam --headless` plays into quits mid-jam and starts again with the
    same port name: the jam reconnects and plays on into it, and no note hangs there."""
    synth = RecordingClient("vanishing synth")
    jam = JamtuiProc("-v", "jam", "--headless", "--in", "virtual:vanish in", "--out", "vanishing synth",
                     "--preset", "continuous")
    back = None
    try:
        jam.wait_for_line("jamtui jam:")
        assert wait_for(lambda: len(synth.note_ons()) >= 3, 20), jam.stderr
        synth.close()
        assert wait_for(lambda: "vanished" in jam.stderr, 10), jam.stderr
        time.sleep(0.5)
        back = RecordingClient("vanishing synth")
        assert wait_for(lambda: len(back.note_ons()) >= 3, 20), f"no notes after the port came back: {jam.stderr}"
        assert jam.interrupt() == 0, jam.stderr
        assert "Traceback" not in jam.stderr and "is back" in jam.stderr, jam.stderr
        messages = back.snapshot()
        # Offs owed from before the outage may reach the new synth first; nothing else is unpaired.
        problems = [p for p in unbalanced(messages) if "of no sounding note" not in p]
        assert problems == [] and ends_in_silence(messages), describe(messages)
    finally:
        jam.kill()
        if back is not None:
            back.close()


# -- Ctrl-C -----------------------------------------------------------------------------------


@pytest.mark.jack
def test_ctrl_c_at_a_random_moment(jack_server, tmp_path):
    """`jamtui jam --headless` with the shipped model, the performer from a file and a JACK
    recording client on its output; Ctrl-C at a seeded random moment 0.5-4 s into the jam
    (before, during or after an answer, with notes sounding). Exit 0, no traceback, the
    output balanced and silent, the recording complete. Three jams at once, to save time."""
    rng = random.Random(20261125)
    midi = write_performance(tmp_path / "phrases.mid", phrases=3, notes=4, pause_s=2.0)
    runs = []
    for rep, preset in enumerate(["default", "continuous", "default"]):
        rec = RecordingClient(f"ctrl-c rec {rep}")
        jam = JamtuiProc("-v", "jam", "--headless", "--in", str(midi), "--out", f"ctrl-c rec {rep}",
                         "--preset", preset, "--record", str(tmp_path / f"rec{rep}"))
        runs.append((rep, preset, rng.uniform(0.5, 4.0), rec, jam))
    codes: dict[int, int] = {}

    def interrupt(rep: int, delay_s: float, jam: JamtuiProc) -> None:
        if wait_for(lambda: jam.popen.poll() is not None or any("jamtui jam:" in l for l in jam.lines), 90):
            time.sleep(delay_s)
            codes[rep] = jam.interrupt()

    threads = [threading.Thread(target=interrupt, args=(rep, delay_s, jam)) for rep, _, delay_s, _, jam in runs]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        for rep, preset, delay_s, rec, jam in runs:
            context = f"rep {rep} ({preset}, Ctrl-C {delay_s:.2f} s into the jam): {jam.stderr}"
            assert "jamtui jam:" in jam.stderr and codes.get(rep) == 0, context
            assert "Traceback" not in jam.stderr, context
            assert wait_for(lambda: ends_in_silence(rec.snapshot()), 5), describe(rec.snapshot()) + context
            messages = rec.snapshot()
            assert unbalanced(messages) == [], describe(messages) + context
            record_dir = tmp_path / f"rec{rep}"
            sidecars = list(record_dir.glob("*.json"))
            assert len(sidecars) == 1 and not list(record_dir.glob("*.partial.jsonl")), context
            meta = json.loads(sidecars[0].read_text())
            assert meta["status"] == "complete"
            assert meta["counts"]["ai"] >= sum(1 for m in messages if is_note_on(m))
        assert any(is_note_on(m) for _, _, _, rec, _ in runs for m in rec.snapshot()), "no Ctrl-C met the AI playing"
    finally:
        for _, _, _, rec, jam in runs:
            jam.kill()
            rec.close()


@pytest.mark.jack
def test_ctrl_c_while_starting(jack_server, tmp_path):
    """Ctrl-C before the jam began (loading the model): status 130, no traceback, nothing
    played and no recording left half-written."""
    rng = random.Random(7)
    rec = RecordingClient("ctrl-c start rec")
    try:
        for rep in range(2):
            jam = JamtuiProc("jam", "--headless", "--out", "ctrl-c start rec", "--record", str(tmp_path / "rec"))
            time.sleep(rng.uniform(0.3, 1.5))
            code = jam.interrupt()
            assert "Traceback" not in jam.stderr, jam.stderr
            # (on a machine that starts the jam sooner than that, Ctrl-C ends the jam itself: 0)
            assert code == (0 if "jamtui jam:" in jam.stderr else 130), jam.stderr
        assert not [m for m in rec.snapshot() if is_note_on(m)]
        assert not list((tmp_path / "rec").glob("*.partial.jsonl"))
    finally:
        rec.close()
