"""The benchmark runs and reports every key it promises (figures are printed, not asserted)."""
from __future__ import annotations

import json
import math
import subprocess

from tests.conftest import REPO, jamtui_cmd


def test_bench_json_has_the_scheduler_keys():
    result = subprocess.run(jamtui_cmd("bench", "--json", "--events", "400"), cwd=REPO,
                            capture_output=True, text=True, timeout=120)
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
