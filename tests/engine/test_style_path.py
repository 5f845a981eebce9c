"""A newcomer's path to playing with their own style, through the command line only and with the
shipped model: a folder of MIDI files -> `corpus add` -> `train` -> `style list|show` ->
`simulate --style` (and `jam --headless --style` over JACK)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess

import pytest

from jamtui.cli import main
from tests.conftest import REPO, jamtui_cmd
from tests.jack_clients import write_performance

STYLE = "my-touch"


def run(*argv: str) -> tuple[int, str, str]:
    """`jamtui ARGV` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The user data dir of a newcomer who has put 4 takes in a folder, added them as a corpus and
    trained a style on it: (the data dir, the folder, the outputs of `corpus add` and `train`)."""
    root = tmp_path_factory.mktemp("newcomer")
    takes = root / "my takes"
    takes.mkdir()
    for i in range(4):  # ~9 s each: phrases of 8 notes, some over a pedalled bass
        write_performance(takes / f"take{i}.mid", phrases=3, pause_s=1.0, seed=i)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_DATA_HOME", str(root / "data"))
        added = run("corpus", "add", "mine", str(takes))
        # A few small steps on the shipped model (no replay: the path, not the music, is tested here).
        trained = run("train", "--corpus", "mine", "--name", STYLE, "--steps", "3", "--replay", "0", "--seq-len",
                      "128", "--batch", "2", "--copies", "1", "--threads", "1")
        yield root / "data", takes, added, trained


def test_from_a_folder_of_midi_files_to_a_duet_with_the_style(home, tmp_path):
    data, takes, added, trained = home
    code, out, err = added
    assert code == 0, err
    assert out.startswith("corpus mine: added 4 files") and "skipped 0" in out, out

    code, out, err = trained
    assert code == 0, err
    assert f"style {STYLE} in {data / 'jamtui' / 'styles' / STYLE}: 3 steps (max steps)" in out, out
    assert f"jamtui jam --style {STYLE}" in out  # the line tells the newcomer what to do next

    code, out, err = run("style", "list")
    assert code == 0, err
    assert out.split()[:3] == [STYLE, "rank", "8"] and "corpus mine" in out, out
    code, out, err = run("style", "show", STYLE)
    assert code == 0, err
    assert out.startswith(f"style {STYLE}: ") and "corpus: mine" in out and "run: 3 steps" in out, out

    duet, report_path = tmp_path / "duet.mid", tmp_path / "report.json"
    code, out, err = run("simulate", "--performer", str(takes / "take0.mid"), "--preset", "default", "--style", STYLE,
                         "--minutes", "0.2", "--out", str(duet), "--report", str(report_path))
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert report["model"] == f"default-model + {STYLE}:1"  # the style played, at full weight
    assert report["adapters"] == [{"path": str(data / "jamtui" / "styles" / STYLE), "weight": 1.0}]
    assert report["ai_notes"] > 0 and report["performer_notes"] > 0
    assert report["stuck_notes"] == 0 and report["generation_errors"] == 0
    assert duet.is_file()


@pytest.mark.jack
@pytest.mark.timeout(180)
def test_jam_headless_with_the_style(home, jack_server, tmp_path):
    """The same style, live: a MIDI file as the keyboard, a virtual JACK output as the synth."""
    _data, takes, _, _ = home
    result = subprocess.run(jamtui_cmd("-v", "jam", "--headless", "--style", STYLE, "--in", str(takes / "take1.mid"),
                                       "--out", "virtual:newcomer out", "--seconds", "3", "--record",
                                       str(tmp_path / "rec")),
                            cwd=REPO, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    loaded = [line for line in result.stderr.splitlines() if "engine.model.load: model " in line]
    assert loaded and f"default-model + {STYLE}:1" in loaded[0], result.stderr
    assert "jamtui jam: " in result.stderr and "recorded" in result.stderr, result.stderr
    sidecars = list((tmp_path / "rec").glob("*.json"))
    assert len(sidecars) == 1 and json.loads(sidecars[0].read_text())["status"] == "complete"


@pytest.mark.timeout(180)
def test_ctrl_c_at_a_terminal_keeps_the_style_so_far_and_resume_goes_on_from_that_step(home):
    data, _takes, _, _ = home
    env = {**os.environ, "XDG_DATA_HOME": str(data), "PYTHONUNBUFFERED": "1"}
    tiny = ["--replay", "0", "--seq-len", "64", "--batch", "2", "--copies", "1", "--threads", "1", "--json"]
    child = subprocess.Popen(jamtui_cmd("train", "--corpus", "mine", "--name", "stopped", "--steps", "100000", *tiny),
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in child.stdout:  # past a few steps, then Ctrl-C as at a terminal
            lines.append(json.loads(line))
            if lines[-1].get("step", 0) >= 3:
                child.send_signal(signal.SIGINT)
                break
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert "stopping style stopped after this step" in err and "Traceback" not in err, err
    done = json.loads(out.strip().splitlines()[-1])
    assert done["event"] == "train-done" and done["stopped_because"] == "stopped"
    stopped_at = done["steps"]
    assert stopped_at >= 3
    style = data / "jamtui" / "styles" / "stopped"
    card = json.loads((style / "card.json").read_text())
    assert card["run"]["stopped_because"] == "stopped" and (style / "adapter_model.safetensors").is_file()

    code, out, err = run("train", "--corpus", "mine", "--name", "stopped", "--steps", str(stopped_at + 2), "--resume",
                         *tiny)
    assert code == 0, err
    steps = [json.loads(line)["step"] for line in out.splitlines() if json.loads(line)["event"] == "train"]
    assert steps == [stopped_at + 1, stopped_at + 2]  # on from where Ctrl-C stopped it: no step lost
