"""Bad input to the command line: one line naming the thing, non-zero exit, no traceback."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO, jamtui_cmd
from tests.midi_fixtures import write_bad_header, write_empty, write_garbage, write_no_notes, write_scale, write_truncated


def run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(jamtui_cmd(*args), cwd=REPO, capture_output=True, text=True, timeout=60, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("jamtui: error: ")
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    "make_file, reason",
    [
        (write_truncated, "truncated"),
        (write_bad_header, "bad header"),
        (write_garbage, ""),
        (write_no_notes, "no notes"),
        (write_empty, "empty"),
    ],
)
def test_play_rejects_bad_files(tmp_path, make_file, reason):
    path = make_file(tmp_path)
    assert_one_line_error(run("play", str(path), "--out", "anything"), path.name, reason)


def test_play_missing_file(tmp_path):
    assert_one_line_error(run("play", str(tmp_path / "nope.mid"), "--out", "x"), "nope.mid", "no such file")


def test_unknown_api():
    assert_one_line_error(run("--api", "beos", "ports"), "beos")


@pytest.mark.jack
def test_unknown_port_lists_existing(jack_server, tmp_path):
    path = write_scale(tmp_path)
    result = run("play", str(path), "--out", "no such synth")
    assert_one_line_error(result, "no such synth", "existing outputs")


@pytest.mark.jack
def test_ports_lists_jack_ports(jack_server):
    import rtmidi

    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="kbd")
    out.open_virtual_port("keys")
    try:
        result = run("ports")
        assert result.returncode == 0, result.stderr
        assert "MIDI system: jack" in result.stdout
        assert "kbd:keys" in result.stdout
    finally:
        out.delete()


def test_no_jack_server_is_a_one_line_error():
    result = run("--api", "jack", "ports", env_extra={"JACK_DEFAULT_SERVER": "jamtui-no-such-server",
                                                       "JACK_NO_START_SERVER": "1"})
    assert_one_line_error(result, "jack", "JACK server")
