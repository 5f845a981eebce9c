"""Test-side JACK clients and checks: a recording client, a jamtui subprocess, a performance file,
and what an output must look like (every note ended, silence at the end)."""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import mido
import pytest

from tests.conftest import REPO, jamtui_cmd, wait_for

NOTE_OFF, NOTE_ON, CONTROL = 0x80, 0x90, 0xB0
ALL_NOTES_OFF = 123


class RecordingClient:
    """A JACK MIDI input (its own client) that keeps every message with its arrival time.

    It polls rtmidi's queue from a thread, as jamtui's own capture does with JACK: a Python
    callback would run on JACK's real-time thread, and waiting for the GIL there made JACK
    miss cycles and garble bursts (seen as one message repeated in place of the others)."""

    def __init__(self, port_name: str, client_name: str = "rec") -> None:
        import rtmidi

        self.port_name = port_name
        self.messages: list[tuple[int, ...]] = []
        self.times: list[float] = []
        self._lock = threading.Lock()
        self._in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=client_name, queue_size_limit=8192)
        self._in.ignore_types(sysex=False, timing=False, active_sense=False)
        self._in.open_virtual_port(port_name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"rec-{port_name}", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            got = self._in.get_message()
            if got is None:
                time.sleep(0.0005)
                continue
            with self._lock:
                self.messages.append(tuple(got[0]))
                self.times.append(time.monotonic())

    def snapshot(self) -> list[tuple[int, ...]]:
        with self._lock:
            return list(self.messages)

    def note_ons(self) -> list[tuple[int, ...]]:
        return [m for m in self.snapshot() if is_note_on(m)]

    def close(self) -> None:
        time.sleep(0.05)  # what is in rtmidi's queue still arrives
        self._stop.set()
        self._thread.join(2.0)
        self._in.close_port()
        self._in.delete()


def is_note_on(m: tuple[int, ...]) -> bool:
    return m[0] & 0xF0 == NOTE_ON and len(m) == 3 and m[2] > 0


def is_note_off(m: tuple[int, ...]) -> bool:
    return len(m) == 3 and (m[0] & 0xF0 == NOTE_OFF or (m[0] & 0xF0 == NOTE_ON and m[2] == 0))


def unbalanced(messages: list[tuple[int, ...]]) -> list[str]:
    """Problems with note pairing, strictly by (channel, pitch): a note-on while that key still
    sounds, a note-off for a key not sounding, and keys left sounding at the end. An
    all-notes-off does not count as ending a note: every note-on needs its own note-off."""
    problems = []
    sounding: set[tuple[int, int]] = set()
    for i, m in enumerate(messages):
        key = (m[0] & 0x0F, m[1]) if len(m) == 3 else None
        if is_note_on(m):
            if key in sounding:
                problems.append(f"#{i}: note-on {key} while it sounds")
            sounding.add(key)
        elif is_note_off(m):
            if key not in sounding:
                problems.append(f"#{i}: note-off {key} of no sounding note")
            sounding.discard(key)
    problems += [f"left sounding: {key}" for key in sorted(sounding)]
    return problems


def ends_in_silence(messages: list[tuple[int, ...]], channels=range(16)) -> bool:
    """An all-notes-off (CC123) on every channel after the last note-on."""
    last_on = max((i for i, m in enumerate(messages) if is_note_on(m)), default=-1)
    tail = messages[last_on + 1:]
    silenced = {m[0] & 0x0F for m in tail if m[0] & 0xF0 == CONTROL and m[1] == ALL_NOTES_OFF}
    return set(channels) <= silenced


def describe(messages: list[tuple[int, ...]], limit: int = 40) -> str:
    return " ".join(bytes(m).hex() for m in messages[-limit:])


class JamtuiProc:
    """A jamtui subprocess whose stderr lines are collected by a thread as they come."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.popen = subprocess.Popen(jamtui_cmd(*args), cwd=REPO, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stderr:
            self.lines.append(line)

    def wait_for_line(self, text: str, timeout_s: float = 60) -> None:
        if not wait_for(lambda: self.popen.poll() is not None or any(text in l for l in self.lines), timeout_s):
            pytest.fail(f"no '{text}' from jamtui within {timeout_s} s: {self.stderr}")
        if not any(text in l for l in self.lines):
            self._reader.join(5)
            pytest.fail(f"jamtui exited with {self.popen.returncode} before '{text}': {self.stderr}")

    def interrupt(self, timeout_s: float = 30) -> int:
        """Ctrl-C: SIGINT, then the exit status."""
        self.popen.send_signal(signal.SIGINT)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float = 30) -> int:
        try:
            code = self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"jamtui did not exit within {timeout_s} s: {self.stderr}")
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


def write_performance(path: Path, phrases: int = 4, notes: int = 8, step_s: float = 0.25, pause_s: float = 3.5,
                      seed: int = 7) -> Path:
    """A pianist trading phrases: `phrases` legato lines of `notes` notes (some with a held
    bass note and the sustain pedal), each followed by `pause_s` of silence. 120 bpm, 480
    ticks per beat: 960 ticks a second."""
    import random

    rng = random.Random(seed)
    timed: list[tuple[int, int, mido.Message]] = []  # (tick, order, message); offs before ons at a tick

    def at(t_s: float) -> int:
        return round(t_s * 960)

    t_s = 0.0
    for k in range(phrases):
        root = rng.choice([57, 60, 62, 65, 67])
        line = [root + rng.choice([0, 2, 3, 5, 7, 9, 10, 12]) for _ in range(notes)]
        for i, pitch in enumerate(line):
            on_s = t_s + i * step_s
            timed.append((at(on_s), 1, mido.Message("note_on", note=pitch, velocity=rng.randint(60, 100))))
            timed.append((at(on_s + step_s * 0.9), 0, mido.Message("note_off", note=pitch)))
        if k % 2:
            bass = root - 24
            timed.append((at(t_s), 1, mido.Message("note_on", note=bass, velocity=70)))
            timed.append((at(t_s), 2, mido.Message("control_change", control=64, value=127)))
            end_s = t_s + notes * step_s
            timed.append((at(end_s - 0.1), 0, mido.Message("note_off", note=bass)))
            timed.append((at(end_s - 0.05), 2, mido.Message("control_change", control=64, value=0)))
        t_s += notes * step_s + pause_s
    timed.sort(key=lambda item: (item[0], item[1]))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
    last = 0
    for tick, _, message in timed:
        track.append(message.copy(time=tick - last))
        last = tick
    mido.MidiFile(type=0, ticks_per_beat=480, tracks=[track]).save(path)
    return path
