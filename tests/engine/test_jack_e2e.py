"""End to end over real JACK ports: a player process -> `jamtui thru` -> a recording client."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from engine.midi.midifile import load_midi_events
from tests.conftest import REPO, jamtui_cmd, wait_for
from tests.jack_clients import JamtuiProc, RecordingClient
from tests.midi_fixtures import write_chords_with_pedal, write_scale

pytestmark = pytest.mark.jack


def notes(messages: list[tuple[int, ...]]) -> list[tuple[int, int, int]]:
    """(status & 0xF0 normalised to on/off, pitch, velocity) of note messages, in order."""
    out = []
    for m in messages:
        kind = m[0] & 0xF0
        if kind == 0x90 and m[2] == 0:
            kind = 0x80
        if kind in (0x80, 0x90):
            out.append((kind, m[1], m[2] if kind == 0x90 else 0))
    return out


def expected_notes(path) -> list[tuple[int, int, int]]:
    out = []
    for e in load_midi_events(path):
        kind = e.data[0] & 0xF0
        if kind in (0x80, 0x90):
            out.append((kind, e.data[1], e.data[2] if kind == 0x90 else 0))
    return out


def start_thru(*extra: str) -> JamtuiProc:
    proc = JamtuiProc("thru", "--in", "virtual:jamtui in", "--out", "rec in", *extra)
    proc.wait_for_line("jamtui thru:")  # printed once both ports are open and threads run
    return proc


@pytest.mark.parametrize("make_file", [write_scale, write_chords_with_pedal])
def test_player_to_thru_to_recorder(jack_server, tmp_path, make_file):
    midi = make_file(tmp_path)
    rec = RecordingClient("rec in")
    thru = start_thru("--record", str(tmp_path / "rec"))
    try:
        play = subprocess.run(jamtui_cmd("play", str(midi), "--out", "jamtui in"), cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert play.returncode == 0, play.stderr
        want = expected_notes(midi)
        assert wait_for(lambda: len(notes(rec.snapshot())) >= len(want), 5), (
            notes(rec.snapshot()), want, rec.snapshot())
        assert thru.interrupt() == 0, thru.stderr
        got = notes(rec.snapshot())
        assert got == want  # every note, in order, none added
        # pedal messages arrive too, and the output ended in silence
        pedal = [m for m in rec.snapshot() if m[0] & 0xF0 == 0xB0 and m[1] == 64]
        want_pedal = sum(1 for e in load_midi_events(midi) if e.data[0] & 0xF0 == 0xB0 and e.data[1] == 64)
        assert len(pedal) >= want_pedal
        tail = {(m[0] & 0x0F, m[1]) for m in rec.snapshot()[-64:] if m[0] & 0xF0 == 0xB0}
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
    rec = RecordingClient("rec in")
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
