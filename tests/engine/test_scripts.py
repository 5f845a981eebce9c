"""The scripts in scripts/ still start with the engine they import (a moved module breaks them
silently otherwise), and the soak runs a short simulated duet without a stuck note."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

PYTHON_SCRIPTS = ("build-corpus", "measure-tokenizer", "music-bench", "music-table", "piano-roll", "soak")


@pytest.mark.parametrize("name", PYTHON_SCRIPTS)
def test_a_script_starts(name):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / name), "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


@pytest.mark.parametrize("name", ("pretrain", "model-fit"))
def test_a_bash_script_starts(name):
    result = subprocess.run([str(REPO / "scripts" / name), "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_a_short_soak_has_no_stuck_note(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "soak"), "--minutes", "0.25", "--out",
                             str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[0])
    assert report["stuck_notes"] == 0 and report["performer_notes"] > 0 and report["ai_notes"] > 0
    assert report["music"]["hammer"] is not None


def test_style_fit_refuses_a_folder_without_enough_files(tmp_path):
    """`scripts/style-fit --files DIR` holds the last 2 files out: it needs 3 or more, and says so."""
    folder = tmp_path / "my takes"
    folder.mkdir()
    (folder / "one.mid").write_bytes(b"MThd")
    (folder / "notes.txt").write_text("not a take")
    result = subprocess.run([str(REPO / "scripts" / "style-fit"), "--files", str(folder), "--out", str(tmp_path / "fit")],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert f"{folder}: 1 MIDI files" in result.stderr and "need at least 3" in result.stderr
    assert not (tmp_path / "fit" / "xdg").exists()


def test_style_fit_reads_relative_paths_from_where_it_was_started(tmp_path):
    """The script runs in the checkout, but `--files takes` and `--out fit` are the caller's."""
    folder = tmp_path / "takes"
    folder.mkdir()
    (folder / "one.mid").write_bytes(b"MThd")
    name = f"fit-{tmp_path.name}"
    result = subprocess.run([str(REPO / "scripts" / "style-fit"), "--files", "takes", "--out", name],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert f"{folder}: 1 MIDI files" in result.stderr
    assert (tmp_path / name).is_dir() and not (REPO / name).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_device_check_says_when_there_is_no_gpu(tmp_path):
    """`scripts/device-check` runs the CUDA checks on a lent GPU machine; elsewhere it says why not."""
    result = subprocess.run([str(REPO / "scripts" / "device-check")], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out"),
                                              "DEVICE_KIT": str(tmp_path / "no-kit")})
    assert result.returncode == 2
    assert "torch sees no CUDA device here" in result.stderr
