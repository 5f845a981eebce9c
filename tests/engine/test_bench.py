"""The benchmark runs and reports every key it promises (figures are printed, not asserted)."""
from __future__ import annotations

import json
import math
import subprocess

import torch

from tests.conftest import REPO, jamtui_cmd

LORA_KEYS = ("lora_train", "lora_train_tokens_per_s", "lora_train_tokens_per_s_cuda")


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

    # LoRA training throughput of the shipped model (rank 8, 8 x 512 tokens a step): a CPU figure
    # always, a CUDA one only where there is a GPU.
    cpu = data["lora_train_tokens_per_s"]
    assert isinstance(cpu, float) and math.isfinite(cpu) and 0 < cpu < 1e6
    assert ("lora_train_tokens_per_s_cuda" in data) == torch.cuda.is_available()
    if torch.cuda.is_available():
        assert data["lora_train_tokens_per_s_cuda"] > 0


def test_no_model_skips_the_model_rows():
    result = subprocess.run(jamtui_cmd("bench", "--json", "--events", "200", "--no-model"), cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sent_events"] > 0
    assert not {"decode_ms_p50", "decode_ms_p50_with_adapter", *LORA_KEYS} & set(data)


def test_lora_train_figure_on_a_tiny_model(tiny_checkpoint):
    from engine.offline.bench import bench_lora_train

    threads = torch.get_num_threads()
    tokens_per_s = bench_lora_train(tiny_checkpoint, rank=4, seq_len=64, batch_size=2, steps=2, threads=1)
    assert math.isfinite(tokens_per_s) and tokens_per_s > 0
    assert torch.get_num_threads() == threads  # the bench leaves the process's threads as it found them


def test_bench_rejects_a_negative_cue_count():
    result = subprocess.run(jamtui_cmd("bench", "--cues", "-1"), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--cues" in result.stderr and "Traceback" not in result.stderr
