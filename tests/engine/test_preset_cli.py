"""`jamtui preset list|show|validate`: output on success, one-line errors with exit status 2."""
from __future__ import annotations

import os
import subprocess
import tomllib

import pytest

from tests.conftest import REPO, jamtui_cmd


@pytest.fixture
def run(tmp_path):
    """Run `jamtui preset ...` with the user's config dir in tmp_path (platformdirs reads XDG on Linux)."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))

    def run_(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(jamtui_cmd("preset", *args), cwd=REPO, capture_output=True, text=True, timeout=60,
                              env=env)

    return run_


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("jamtui: error: ")
    for needle in needles:
        assert needle in lines[0]


def test_list_shows_the_shipped_presets(run):
    result = run("list")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    for name in ("default", "call-and-response", "accompany", "continuous", "imitate"):
        assert rows[name] == "shipped"


def test_show_prints_the_resolved_preset_as_toml(run, tmp_path):
    result = run("show", "accompany")
    assert result.returncode == 0, result.stderr
    table = tomllib.loads(result.stdout)
    assert table["mode"] == "accompany"
    assert table["sampling"]["top_k"] == 0  # filled in from the defaults

    path = tmp_path / "mine.toml"
    path.write_text(result.stdout)
    assert run("validate", str(path)).stdout.strip() == f"ok: {path}"


def test_show_unknown_name(run):
    assert_one_line_error(run("show", "no-such-preset"), "no-such-preset", "not found")


def test_validate_reports_the_key(run, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[sampling]\ntemperature = 9\n")
    assert_one_line_error(run("validate", str(path)), str(path), "sampling.temperature", "between 0 and 5")


def test_validate_syntax_error(run, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[sampling\n")
    assert_one_line_error(run("validate", str(path)), str(path), "TOML syntax error", "line 1")
