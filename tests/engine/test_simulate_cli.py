"""`jamtui simulate` end to end with the shipped model: the report's keys and a balanced duet."""
from __future__ import annotations

import json
import subprocess

import mido

from tests.conftest import REPO, jamtui_cmd
from tests.midi_fixtures import write_chords_with_pedal, write_truncated

KEYS = ("performer_notes", "ai_notes", "stuck_notes", "response_ms_p50", "response_ms_p99", "echo_rate", "rtf",
        "dropped_onsets")


def test_simulate_continuous_writes_duet_and_report(tmp_path):
    performer = write_chords_with_pedal(tmp_path)
    out, report = tmp_path / "duet.mid", tmp_path / "r.json"
    result = subprocess.run(jamtui_cmd("simulate", "--performer", str(performer), "--preset", "continuous",
                                       "--out", str(out), "--report", str(report), "--minutes", "0.25"),
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    for key in KEYS:
        assert key in data, key
    assert data["stuck_notes"] == 0
    assert data["performer_notes"] > 0 and data["ai_notes"] > 0
    midi = mido.MidiFile(out)
    assert [t.name for t in midi.tracks] == ["performer", "ai"]
    assert sum(1 for m in midi.tracks[1] if m.type == "note_on" and m.velocity > 0) == data["ai_notes"]
    # The music figures of the same duet, as `jamtui review` reads it back from the file.
    music = data["music"]
    assert music["ai_notes"] == data["ai_notes"] and music["performer_notes"] == data["performer_notes"]
    assert 0.0 <= music["hammer"] <= 1.0 and music["density"] > 0
    review = subprocess.run(jamtui_cmd("review", str(out), "--mode", "continuous", "--json"), cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert review.returncode == 0, review.stderr
    assert json.loads(review.stdout) == {**music, "file": str(out), "mode": "continuous"}


def test_review_of_a_file_that_is_not_midi_is_one_line(tmp_path):
    bad = write_truncated(tmp_path)
    result = subprocess.run(jamtui_cmd("review", str(bad), "--mode", "accompany"), cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and bad.name in result.stderr


def test_simulate_bad_performer_file(tmp_path):
    bad = write_truncated(tmp_path)
    result = subprocess.run(jamtui_cmd("simulate", "--performer", str(bad), "--out", str(tmp_path / "d.mid"),
                                       "--report", str(tmp_path / "r.json")),
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and bad.name in result.stderr
