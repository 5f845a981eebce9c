"""`jamtui` as a user runs it, in a real terminal (tmux), on real JACK ports: every panel is on
the screen at 80x24 and 120x40, each panel key opens its screen, and `q` quits."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import REPO


def _tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], check=True, capture_output=True, text=True).stdout


def _pane(socket: str) -> str:
    return _tmux(socket, "capture-pane", "-p", "-t", "jam")


def _wait_for(socket: str, *texts: str, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        pane = _pane(socket)
        if all(t in pane for t in texts):
            return pane
        if time.monotonic() > deadline:
            raise AssertionError(f"not on the screen after {timeout_s:.0f} s: {texts}\n{pane}")
        time.sleep(0.3)


@pytest.fixture
def tmux():
    if shutil.which("tmux") is None:
        if os.environ.get("JAMTUI_REQUIRE_JACK") == "1":
            pytest.fail("tmux is not installed but CI must run the console test (scripts/install-jack installs it)")
        pytest.skip("tmux is not installed (apt-get install tmux)")
    socket = f"jamtui-{uuid.uuid4().hex[:8]}"
    yield socket
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_the_console_in_a_terminal_shows_every_panel(jack_server, tmux, tmp_path, size):
    width, height = size
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    # A fresh tmux server per test: it runs the console with this environment (the JACK server's name).
    subprocess.run(["tmux", "-L", tmux, "new-session", "-d", "-s", "jam", "-x", str(width), "-y", str(height),
                    f"{sys.executable} -m jamtui"], check=True, env=env, cwd=REPO)
    pane = _wait_for(tmux, "Input", "Output", "jamtui in", "meters", "roll", "log", "Quit")
    assert "stopped" in pane and "preset" in pane
    _tmux(tmux, "send-keys", "-t", "jam", "Space")
    pane = _wait_for(tmux, "jamming", timeout_s=120)  # on jamtui's own JACK ports, once the model is loaded
    for key, title in (("F2", "presets"), ("F3", "styles"), ("F4", "train a style"), ("?", "every action by name")):
        _tmux(tmux, "send-keys", "-t", "jam", key)
        _wait_for(tmux, title, timeout_s=20)
        _tmux(tmux, "send-keys", "-t", "jam", "Escape")
        _wait_for(tmux, "meters", "roll", timeout_s=20)
    _tmux(tmux, "send-keys", "-t", "jam", "q")
    deadline = time.monotonic() + 30
    while subprocess.run(["tmux", "-L", tmux, "has-session", "-t", "jam"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, f"q did not quit:\n{_pane(tmux)}"
        time.sleep(0.3)
