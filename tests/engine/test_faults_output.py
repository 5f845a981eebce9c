"""Faults in the output a jam must survive without a hung note: the output thread dying, the
port vanishing and coming back (simulated, and a real JACK synth quitting mid-jam), and a JACK
port closed right after a burst or while another thread sends."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from engine.clock import FakeClock, MonotonicClock, s_to_ns
from engine.midi.memory import MemoryInputPort, MemoryOutputPort
from engine.presets.schema import Preset
from engine.duet.session import Session
from tests.conftest import REPO, wait_for
from tests.engine.faults import OutputMessages, assert_clean_end, note_ons, ons_after, simulated
from tests.jack_clients import JamtuiProc, RecordingClient, describe, ends_in_silence, is_note_on, unbalanced

pytestmark = pytest.mark.timeout(180)


# -- the output thread dying ----------------------------------------------------------------


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


# -- the output port vanishing --------------------------------------------------------------


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
