"""End to end over real JACK ports: a player process -> `jamtui thru` -> a recording client."""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest

from engine.midi.midifile import load_midi_events
from engine.midi.system import list_ports
from tests.conftest import REPO, jamtui_cmd, wait_for
from tests.midi_fixtures import write_chords_with_pedal, write_scale

pytestmark = pytest.mark.jack


class Recorder:
    """The third client: a JACK MIDI input that keeps every message with its arrival time."""

    def __init__(self, name: str) -> None:
        import rtmidi

        self.messages: list[tuple[int, ...]] = []
        self._in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="rec")
        self._in.ignore_types(sysex=False, timing=False, active_sense=False)
        self._in.open_virtual_port(name)
        self._in.set_callback(lambda ev, _d: self.messages.append(tuple(ev[0])))

    def notes(self) -> list[tuple[int, int, int]]:
        """(status & 0xF0 normalised to on/off, pitch, velocity) of note messages, in order."""
        out = []
        for m in self.messages:
            kind = m[0] & 0xF0
            if kind == 0x90 and m[2] == 0:
                kind = 0x80
            if kind in (0x80, 0x90):
                out.append((kind, m[1], m[2] if kind == 0x90 else 0))
        return out

    def close(self) -> None:
        self._in.delete()


def expected_notes(path) -> list[tuple[int, int, int]]:
    out = []
    for e in load_midi_events(path):
        kind = e.data[0] & 0xF0
        if kind in (0x80, 0x90):
            out.append((kind, e.data[1], e.data[2] if kind == 0x90 else 0))
    return out


class Proc:
    """A jamtui subprocess whose stderr lines are collected by a thread as they come."""

    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(jamtui_cmd(*args), cwd=REPO, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stderr:
            self.lines.append(line)

    def wait_for_line(self, text: str, timeout_s: float = 20) -> None:
        if not wait_for(lambda: self.popen.poll() is not None or any(text in l for l in self.lines), timeout_s):
            pytest.fail(f"no '{text}' from jamtui within {timeout_s} s: {''.join(self.lines)}")
        if not any(text in l for l in self.lines):
            pytest.fail(f"jamtui exited with {self.popen.returncode}: {''.join(self.lines)}")

    def interrupt(self) -> int:
        self.popen.send_signal(signal.SIGINT)
        code = self.popen.wait(20)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


def start_thru(*extra: str) -> Proc:
    proc = Proc("thru", "--in", "virtual:jamtui in", "--out", "rec in", *extra)
    proc.wait_for_line("jamtui thru:")  # printed once both ports are open and threads run
    return proc


@pytest.mark.parametrize("make_file", [write_scale, write_chords_with_pedal])
def test_player_to_thru_to_recorder(jack_server, tmp_path, make_file):
    midi = make_file(tmp_path)
    rec = Recorder("rec in")
    thru = start_thru("--record", str(tmp_path / "rec"))
    try:
        play = subprocess.run(jamtui_cmd("play", str(midi), "--out", "jamtui in"), cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert play.returncode == 0, play.stderr
        want = expected_notes(midi)
        assert wait_for(lambda: len(rec.notes()) >= len(want), 5), (rec.notes(), want, rec.messages)
        assert thru.interrupt() == 0, thru.stderr
        got = rec.notes()
        assert got == want  # every note, in order, none added
        # pedal messages arrive too, and the output ended in silence
        pedal = [m for m in rec.messages if m[0] & 0xF0 == 0xB0 and m[1] == 64]
        want_pedal = sum(1 for e in load_midi_events(midi) if e.data[0] & 0xF0 == 0xB0 and e.data[1] == 64)
        assert len(pedal) >= want_pedal
        tail = {(m[0] & 0x0F, m[1]) for m in rec.messages[-64:] if m[0] & 0xF0 == 0xB0}
        assert {(ch, cc) for ch in range(16) for cc in (123, 121)} <= tail
        # the recording holds the performer's notes
        sidecars = list((tmp_path / "rec").glob("*.json"))
        assert len(sidecars) == 1
        meta = json.loads(sidecars[0].read_text())
        assert meta["status"] == "complete"
        assert meta["counts"]["performer"] >= len(want)
    finally:
        thru.kill()
        rec.close()


def test_thru_recovers_partial_recording_after_kill(jack_server, tmp_path):
    midi = write_scale(tmp_path)
    rec = Recorder("rec in")
    record_dir = tmp_path / "rec"
    thru = start_thru("--record", str(record_dir))
    try:
        subprocess.run(jamtui_cmd("play", str(midi), "--out", "jamtui in"), cwd=REPO, check=True, timeout=60)
        time.sleep(0.6)  # past the recorder's flush interval
        thru.kill()  # SIGKILL: no chance to finish the recording
        assert list(record_dir.glob("*.partial.jsonl"))
        again = start_thru("--record", str(record_dir))
        assert again.interrupt() == 0
        assert "recovered an interrupted recording" in again.stderr
        recovered = [json.loads(p.read_text()) for p in record_dir.glob("*.json")]
        statuses = sorted(r["status"] for r in recovered)
        assert statuses == ["complete", "recovered"]
        import mido

        rescued = next(r for r in recovered if r["status"] == "recovered")
        track = mido.MidiFile(record_dir / rescued["midi_file"]).tracks[0]
        pitches = [m.note for m in track if m.type == "note_on" and m.velocity > 0]
        assert pitches == [n[1] for n in expected_notes(midi) if n[0] == 0x90]
    finally:
        thru.kill()
        rec.close()
