"""`jamtui jam --headless` end to end over real JACK ports, with the shipped model: a player
process plays phrases with pauses into it, a recording client keeps what the AI plays."""
from __future__ import annotations

import json
import subprocess
import time

import mido
import pytest

from tests.conftest import REPO, jamtui_cmd, wait_for
from tests.jack_clients import (
    JamtuiProc,
    RecordingClient,
    describe,
    ends_in_silence,
    is_note_on,
    unbalanced,
    write_performance,
)

pytestmark = [pytest.mark.jack, pytest.mark.timeout(180)]

AI_CHANNEL = 0


def start_jam(tag: str, record_dir, *extra: str) -> JamtuiProc:
    jam = JamtuiProc("-v", "jam", "--headless", "--in", f"virtual:jam {tag} in", "--out", f"jam {tag} rec",
                     "--record", str(record_dir), *extra)
    jam.wait_for_line("jamtui jam:")  # printed once the model is loaded, the ports open and the threads run
    return jam


def play(midi, port: str) -> None:
    """The performer: a separate JACK client process playing `midi` in real time."""
    result = subprocess.run(jamtui_cmd("play", str(midi), "--out", port), cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def settle(rec: RecordingClient, quiet_s: float = 1.5, timeout_s: float = 10.0) -> None:
    """Wait for the answer to the last phrase to begin, then until the AI has been quiet for
    `quiet_s` (that answer played out)."""
    played_s = time.monotonic()
    wait_for(lambda: rec.times and rec.times[-1] > played_s, timeout_s, 0.1)
    wait_for(lambda: time.monotonic() - rec.times[-1] >= quiet_s if rec.times else True, timeout_s, 0.1)


def check_output(rec: RecordingClient, jam: JamtuiProc, min_notes: int) -> list[tuple[int, ...]]:
    messages = rec.snapshot()
    ons = [m for m in messages if is_note_on(m)]
    assert len(ons) >= min_notes, f"only {len(ons)} AI notes: {jam.stderr}"
    assert {m[0] & 0x0F for m in ons} == {AI_CHANNEL}
    assert unbalanced(messages) == [], describe(messages)
    assert ends_in_silence(messages), describe(messages)
    assert "Traceback" not in jam.stderr, jam.stderr
    return messages


def check_recording(record_dir, ai_ons: int, performer_ons: int) -> None:
    sidecars = list(record_dir.glob("*.json"))
    assert len(sidecars) == 1, list(record_dir.iterdir())
    meta = json.loads(sidecars[0].read_text())
    assert meta["status"] == "complete"
    assert not list(record_dir.glob("*.partial.jsonl"))
    midi = mido.MidiFile(record_dir / meta["midi_file"])
    ons = {}
    for track in midi.tracks:
        names = [m.name for m in track if m.type == "track_name"]
        ons[names[0] if names else "?"] = sum(1 for m in track if m.type == "note_on" and m.velocity > 0)
    assert ons.get("performer") == performer_ons, ons
    assert ons.get("ai") == ai_ons, ons  # every AI note the synth got is in the recording, and no other


def test_call_and_response_jam_with_the_shipped_model(jack_server, tmp_path):
    """The default preset (call-and-response): three phrases, each answered; Ctrl-C ends it."""
    midi = write_performance(tmp_path / "phrases.mid", phrases=3, pause_s=3.5)
    performer_ons = sum(1 for m in mido.MidiFile(midi).tracks[0] if m.type == "note_on" and m.velocity > 0)
    rec = RecordingClient("jam cr rec")
    jam = start_jam("cr", tmp_path / "rec")
    try:
        play(midi, "jam cr in")
        settle(rec)
        assert jam.interrupt() == 0, jam.stderr
        messages = check_output(rec, jam, min_notes=12)
        answers = [l for l in jam.lines if "ai_phrase_started" in l]
        assert len(answers) >= 3, jam.stderr  # each pause is longer than gap + answer + ring
        check_recording(tmp_path / "rec", sum(1 for m in messages if is_note_on(m)), performer_ons)
    finally:
        jam.kill()
        rec.close()


def test_continuous_jam_stops_after_seconds(jack_server, tmp_path):
    """The continuous preset plays all the time; --seconds ends it, in silence."""
    midi = write_performance(tmp_path / "phrases.mid", phrases=2, pause_s=0.5)
    performer_ons = sum(1 for m in mido.MidiFile(midi).tracks[0] if m.type == "note_on" and m.velocity > 0)
    rec = RecordingClient("jam cont rec")
    jam = start_jam("cont", tmp_path / "rec", "--preset", "continuous", "--seconds", "8")
    try:
        play(midi, "jam cont in")  # 4.5 s of phrases, well inside the 8 s
        assert jam.wait(30) == 0, jam.stderr
        messages = check_output(rec, jam, min_notes=8)
        check_recording(tmp_path / "rec", sum(1 for m in messages if is_note_on(m)), performer_ons)
    finally:
        jam.kill()
        rec.close()
