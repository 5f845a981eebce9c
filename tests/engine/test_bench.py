"""The benchmark runs and reports every key it promises (figures are printed, not asserted)."""
from __future__ import annotations

import json
import math
import subprocess

from tests.conftest import REPO, jamtui_cmd


def test_bench_json_has_the_scheduler_keys():
    result = subprocess.run(jamtui_cmd("bench", "--json", "--events", "400", "--cues", "3"), cwd=REPO,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("send_lateness_ms_p50", "send_lateness_ms_p99", "send_lateness_ms_max"):
        assert isinstance(data[key], float) and not math.isnan(data[key]), key
        assert data[key] >= 0
    assert data["send_lateness_ms_p50"] <= data["send_lateness_ms_p99"] <= data["send_lateness_ms_max"]
    assert data["scheduled_events"] >= 400
    assert data["sent_events"] + data["dropped_late"] >= data["scheduled_events"]
    assert data["load"].startswith("torch matmul")
    assert data["load_gflops"] > 0

    # The model rows and the live duet rows, on the shipped model.
    for key in ("prefill_ms", "decode_ms_p50", "decode_ms_p99", "rtf", "kv_speedup", "first_note_ms_p50",
                "first_note_ms_p99", "gen_lateness_ms_p99", "entry_compute_ms_p50"):
        assert isinstance(data[key], float) and not math.isnan(data[key]) and data[key] >= 0, key
    assert data["first_note_cues"] == 3 and data["first_note_missed"] == 0
    assert data["first_note_ms_p50"] <= data["first_note_ms_p99"] <= data["first_note_ms_max"]
    assert data["gen_sent_events"] > 0


def test_bench_rejects_a_negative_cue_count():
    result = subprocess.run(jamtui_cmd("bench", "--cues", "-1"), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--cues" in result.stderr and "Traceback" not in result.stderr
