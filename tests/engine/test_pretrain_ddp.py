"""Pre-training past one machine: scripts/pretrain's entry point under torchrun as 2 CPU processes
(gloo) follows the one-process run on the same corpus."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch.distributed as dist

from tests.conftest import REPO
from tests.midi_fixtures import write_chords_with_pedal, write_scale, write_two_tracks

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed has no gloo backend here")


@pytest.fixture
def corpus(tmp_path):
    pieces = []
    for i, (split, maker, source) in enumerate([("train", write_two_tracks, "hannds"),
                                                ("train", write_chords_with_pedal, "mma_jazz"),
                                                ("train", write_scale, "score"),
                                                ("val", write_two_tracks, "hannds")]):
        (tmp_path / "corpus" / split).mkdir(parents=True, exist_ok=True)
        path = maker(tmp_path / "corpus" / split, f"piece{i}.mid")
        pieces.append({"id": path.stem, "split": split, "source": source, "tags": {}, "path": f"{split}/{path.name}"})
    sources = {"hannds": {"files": 2, "hours": 0.01, "notes": 10}}
    (tmp_path / "corpus" / "manifest.json").write_text(json.dumps({"pieces": pieces, "sources": sources}))
    return tmp_path / "corpus"


def _args(corpus, out_dir):
    return ["--corpus", str(corpus), "--work", str(out_dir / "work"), "--out", str(out_dir / "model"),
            "--layers", "1", "--width", "32", "--heads", "2", "--ff", "64", "--seq-len", "64", "--batch", "4",
            "--steps", "6", "--eval-every", "3", "--eval-batches", "2", "--warmup", "2", "--jobs", "1",
            "--window-s", "2", "--stride-s", "1", "--copies", "4", "--fresh", "--json", "--device", "cpu",
            "--threads", "1"]


def _done(stdout: str) -> dict:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    done = [line for line in lines if line.get("event") == "pretrain-done"]
    assert len(done) == 1, stdout  # the first process alone speaks
    return done[0]


def test_two_processes_follow_one(corpus, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    one = subprocess.run([sys.executable, "-m", "engine.training.pretrain", *_args(corpus, tmp_path / "one")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "engine.training.pretrain", *_args(corpus, tmp_path / "two")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert two.returncode == 0, two.stderr[-3000:]
    alone, shared = _done(one.stdout), _done(two.stdout)
    state_one = json.loads((tmp_path / "one" / "model" / "training_state.json").read_text())
    state_two = json.loads((tmp_path / "two" / "model" / "training_state.json").read_text())
    assert state_two["runs"][-1]["processes"] == 2 and "processes" not in state_one["runs"][-1]
    assert [h["step"] for h in state_two["history"]] == [h["step"] for h in state_one["history"]] == [3, 6]
    # Same batches, each process's share of the whole batch's mean loss, gradients summed: the two
    # runs differ only by float32 summation order (~1e-6 nats); training moves the loss by ~0.1.
    for a, b in zip(state_one["history"], state_two["history"]):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-4)
        assert a["tokens_seen"] == b["tokens_seen"]
    assert shared["full_val_loss"] == pytest.approx(alone["full_val_loss"], abs=1e-4)
    assert state_one["history"][0]["val_loss"] != state_one["history"][-1]["val_loss"]  # it did train
