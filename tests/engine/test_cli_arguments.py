"""Every bad argument gets one line (`jamtui: error: ...`, exit 2) before any work starts, and nothing
is left behind: issue 11's regression list, then random arguments to the commands that need no port."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import tempfile
from pathlib import Path

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.midi.midifile import atomic_write
from jamtui.cli import main
from tests.conftest import REPO, jamtui_cmd
from tests.midi_fixtures import write_scale, write_with_drums


def call(*argv: str) -> tuple[int, str]:
    """(exit status, stderr) of `jamtui argv...` in this process; any other exception is a failure."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(list(argv))
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
    return status, stderr.getvalue()


def one_line_error(result: tuple[int, str], *needles: str) -> str:
    status, stderr = result
    lines = stderr.strip().splitlines()
    assert status == 2 and len(lines) == 1, stderr
    assert lines[0].startswith("jamtui: error: ") and "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def read_only(tmp_path) -> Path:
    """A folder that takes no new files: mode 555, or /sys where root writes whatever the mode."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


# --- paths to record into: jam --headless and thru --------------------------------------------

@pytest.mark.parametrize("command", [("jam", "--headless"), ("thru",)])
def test_record_into_a_read_only_folder(command, read_only):
    one_line_error(call(*command, "--record", str(read_only / "takes"), "--seconds", "1"),
                   "--record", str(read_only), "cannot write")
    one_line_error(call(*command, "--record", str(read_only)), "--record", str(read_only), "cannot write")


@pytest.mark.parametrize("command", [("jam", "--headless"), ("thru",)])
def test_record_under_a_file(command, a_file):
    one_line_error(call(*command, "--record", str(a_file / "takes")), "--record", str(a_file), "is a file")


@pytest.mark.parametrize("command", [("jam", "--headless"), ("thru",)])
def test_record_with_a_missing_parent(command, tmp_path):
    one_line_error(call(*command, "--record", str(tmp_path / "gone" / "takes")), "--record", "no such folder")
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("command", [("jam", "--headless"), ("thru",)])
def test_record_into_an_existing_file(command, a_file):
    one_line_error(call(*command, "--record", str(a_file)), "--record", str(a_file), "is a file, not a folder")


# --- paths to write: generate --out, simulate --out/--report -----------------------------------

def test_generate_out_naming_a_folder_leaves_no_tmp(tmp_path):
    prompt = write_scale(tmp_path)
    folder = tmp_path / "duets"
    folder.mkdir()
    one_line_error(call("generate", "--prompt", str(prompt), "--out", str(folder)), "--out", "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["duets", "scale.mid"]


def test_generate_out_with_a_missing_parent(tmp_path):
    one_line_error(call("generate", "--prompt", str(write_scale(tmp_path)), "--out", str(tmp_path / "no" / "d.mid")),
                   "--out", "no such folder")


def test_generate_out_in_a_read_only_place(tmp_path, read_only):
    one_line_error(call("generate", "--prompt", str(write_scale(tmp_path)), "--out", str(read_only / "d.mid")),
                   "--out", "cannot write")


@pytest.mark.parametrize("flag", ["--out", "--report"])
def test_simulate_writes_in_a_read_only_place(flag, tmp_path, read_only):
    paths = {"--out": str(tmp_path / "d.mid"), "--report": str(tmp_path / "r.json"), flag: str(read_only / "x")}
    flags = [word for pair in paths.items() for word in pair]
    one_line_error(call("simulate", "--performer", str(write_scale(tmp_path)), *flags), flag, "cannot write")


# --- numbers: finite, in a documented range, 0 and negatives refused ----------------------------

@pytest.mark.parametrize("argv, needle", [
    (("generate", "--temperature", "-1"), "--temperature"),
    (("generate", "--seconds", "nan"), "got nan"),
    (("generate", "--seconds", "1e9"), "at most 3600"),
    (("generate", "--seconds", "0"), "above 0"),
    (("generate", "--top-p", "0"), "--top-p"),
    (("generate", "--top-k", "-3"), "--top-k"),
    (("simulate", "--minutes", "1e9"), "at most 60"),
    (("simulate", "--minutes", "inf"), "--minutes"),
])
def test_offline_numbers(argv, needle, tmp_path):
    paths = {"generate": ("--prompt", "p.mid", "--out", str(tmp_path / "d.mid")),
             "simulate": ("--performer", "p.mid", "--out", str(tmp_path / "d.mid"), "--report", str(tmp_path / "r"))}
    one_line_error(call(*argv, *paths[argv[0]]), argv[1], needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [("jam", "--headless"), ("thru",)])
@pytest.mark.parametrize("seconds", ["-5", "0", "nan", "inf", "1e300"])
def test_live_seconds(command, seconds):
    one_line_error(call(*command, "--seconds", seconds), "--seconds", f"got {seconds}")


def test_help_says_what_no_limit_is():
    status, _ = call("thru", "--help")
    assert status == 0
    help_text = subprocess.run(jamtui_cmd("jam", "--help"), cwd=REPO, capture_output=True, text=True).stdout
    assert "leave it out for no limit" in " ".join(help_text.split())


# --- writes are atomic and leave nothing on failure ----------------------------------------------

def test_atomic_write_removes_its_temporary_file_on_failure(tmp_path):
    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(tmp_path / "d.mid", fail)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(IsADirectoryError):  # replacing a folder fails after the temporary file is written
        (tmp_path / "dir.mid").mkdir()
        atomic_write(tmp_path / "dir.mid", lambda f: f.write(b"x"))
    assert [p.name for p in tmp_path.iterdir()] == ["dir.mid"]


# --- channel 10 is drums ---------------------------------------------------------------------------

def test_generate_refuses_a_drums_only_prompt(tmp_path, tiny_checkpoint):
    prompt = write_with_drums(tmp_path, pitches=())
    line = one_line_error(call("generate", "--prompt", str(prompt), "--out", str(tmp_path / "d.mid"),
                               "--model", str(tiny_checkpoint)), "drums.mid", "no notes but drums (channel 10)")
    assert "d.mid" not in os.listdir(tmp_path), line


def test_generate_ignores_drums_with_one_warning(tmp_path, tiny_checkpoint):
    prompt = write_with_drums(tmp_path)
    out = tmp_path / "d.mid"
    result = subprocess.run(jamtui_cmd("generate", "--prompt", str(prompt), "--out", str(out), "--seconds", "0.5",
                                       "--model", str(tiny_checkpoint)),
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()  # in a pipe: no progress bar, the warning and the summary only
    assert len(lines) == 2 and "WARNING" in lines[0] and "ignored 4 drum notes on channel 10" in lines[0], lines
    assert lines[1].startswith("jamtui generate: ")
    performer = mido.MidiFile(out).tracks[0]
    assert sorted(m.note for m in performer if m.type == "note_on" and m.velocity) == [60, 62, 64, 65]


def test_simulate_refuses_a_drums_only_performer(tmp_path):
    performer = write_with_drums(tmp_path, pitches=())
    one_line_error(call("simulate", "--performer", str(performer), "--out", str(tmp_path / "d.mid"),
                        "--report", str(tmp_path / "r.json")), "no notes but drums")
    assert os.listdir(tmp_path) == ["drums.mid"]


def test_simulate_refuses_one_file_for_duet_and_report(tmp_path):
    one_line_error(call("simulate", "--performer", str(write_scale(tmp_path)), "--out", str(tmp_path / "x"),
                        "--report", str(tmp_path / "x")), "--out and --report name the same file")
    assert os.listdir(tmp_path) == ["scale.mid"]


def test_simulate_summarises_in_one_line_or_prints_json(tmp_path):
    performer = write_scale(tmp_path)
    for flags in ((), ("--json",)):
        result = subprocess.run(jamtui_cmd("simulate", "--performer", str(performer), "--minutes", "0.1", *flags,
                                           "--out", str(tmp_path / "d.mid"), "--report", str(tmp_path / "r.json")),
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        if flags:
            assert json.loads(result.stdout) == json.loads((tmp_path / "r.json").read_text())
        else:
            assert result.stdout.startswith("jamtui simulate: 0.1 min of music") and result.stdout.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["d.mid", "r.json", "scale.mid"]


def test_a_file_performer_leaves_drums_out(tmp_path):
    from engine.clock import FakeClock
    from engine.midi.file_input import FilePlayerPort

    player = FilePlayerPort.from_file(write_with_drums(tmp_path), FakeClock())
    received = []
    player.set_callback(lambda data, t_ns: received.append(bytes(data)))
    player.pump(10**10)
    assert received and all(data[0] & 0x0F != 9 for data in received)


# --- random arguments: exit 0, or one line and exit 2; never a traceback, never a stray file ------

BAD_NUMBERS = st.sampled_from(["nan", "inf", "-inf", "-1", "-0.5", "1e400", "", "x", "1,5", "0x10", "--"])


def numbers(good):
    return st.one_of(BAD_NUMBERS, st.sampled_from(["0", "1e9", "-0"]), good.map(str))


OUT_PATHS = st.sampled_from(["d.mid", ".", "missing/d.mid", "a-file/d.mid", "a-file", "", "prompt.mid"])


@contextlib.contextmanager
def scratch_folder():
    """A fresh working folder holding a prompt and a file; yields it with the names it held."""
    with tempfile.TemporaryDirectory() as folder:
        before = os.getcwd()
        os.chdir(folder)
        try:
            write_scale(Path(folder), "prompt.mid", notes=4)
            Path("a-file").write_text("x")
            yield Path(folder)
        finally:
            os.chdir(before)


def assert_clean_result(result: tuple[int, str], folder: Path, allowed: set[str]) -> None:
    status, stderr = result
    assert "Traceback" not in stderr
    if status != 0:
        one_line_error(result)
    assert {p.name for p in folder.iterdir()} <= {"prompt.mid", "a-file"} | (allowed if status == 0 else set())


def test_an_option_given_the_separator_as_its_value_is_refused(tiny_checkpoint):
    """argparse takes `--top-k=--` as the option with no value ([]), past its type; found by the test below."""
    with scratch_folder() as folder:
        for option in ("--top-k", "--top-p", "--temperature", "--seconds", "--seed"):
            result = call("generate", "--prompt", "prompt.mid", "--model", str(tiny_checkpoint), "--out", "d.mid",
                          f"{option}=--")
            one_line_error(result, f"argument {option}: expected one argument")
            assert_clean_result(result, folder, set())
        result = call("simulate", "--performer", "prompt.mid", "--out", "d.mid", "--report", "r.json", "--minutes=--")
        one_line_error(result, "argument --minutes: expected one argument")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seconds=numbers(st.floats(0.05, 0.5)), temperature=numbers(st.floats(0, 10)),
       top_p=numbers(st.floats(0.01, 1)), top_k=numbers(st.integers(0, 40)), seed=numbers(st.integers(0, 2**32 - 1)),
       out=OUT_PATHS)
def test_generate_takes_any_arguments(tiny_checkpoint, seconds, temperature, top_p, top_k, seed, out):
    with scratch_folder() as folder:
        result = call("generate", "--prompt", "prompt.mid", "--model", str(tiny_checkpoint), "--out", out,
                      f"--seconds={seconds}", f"--temperature={temperature}", f"--top-p={top_p}",
                      f"--top-k={top_k}", f"--seed={seed}")
        assert_clean_result(result, folder, {"d.mid"})


@settings(max_examples=25, deadline=None)
@given(command=st.sampled_from([("simulate", "--minutes"), ("jam", "--headless", "--seconds"),
                                ("thru", "--seconds"), ("bench", "--events"), ("bench", "--cues"),
                                ("train", "--corpus", "c", "--name", "n", "--lr"),
                                ("train", "--corpus", "c", "--name", "n", "--steps"),
                                ("train", "--corpus", "c", "--name", "n", "--velocity-shift"), ("eval", "--seed")]),
       value=BAD_NUMBERS, out=OUT_PATHS)
def test_bad_numbers_and_paths_are_one_line(command, value, out):
    """Every command with a number refuses a bad one before it touches a port, a model or a file."""
    with scratch_folder() as folder:
        extra = {"simulate": ("--performer", "prompt.mid", "--out", out or "d.mid", "--report", "r.json"),
                 "eval": ("--style", "s", "--heldout", "prompt.mid")}.get(command[0], ())
        result = call(*command, value, *extra)
        one_line_error(result)
        assert_clean_result(result, folder, set())


@settings(max_examples=15, deadline=None)
@given(argv=st.lists(st.sampled_from(["review", "preset", "corpus", "style", "list", "show", "validate", "--json",
                                      "--mode", "accompany", "prompt.mid", "a-file", "nope", "-x", "default", ""]),
                     min_size=1, max_size=4))
def test_offline_commands_take_any_words(argv):
    with scratch_folder() as folder, tempfile.TemporaryDirectory() as home:
        saved = {key: os.environ.get(key) for key in ("XDG_CONFIG_HOME", "XDG_DATA_HOME")}
        os.environ.update(XDG_CONFIG_HOME=home, XDG_DATA_HOME=home)
        try:
            result = call(*argv)
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        assert_clean_result(result, folder, set())


def test_a_valid_generate_writes_only_its_file(tmp_path, tiny_checkpoint):
    prompt = write_scale(tmp_path, notes=4)
    status, stderr = call("generate", "--prompt", str(prompt), "--out", str(tmp_path / "d.mid"), "--seconds", "0.5",
                          "--model", str(tiny_checkpoint))
    assert status == 0, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.mid", "scale.mid"]


# --- progress: reported by the engine, drawn only on a terminal ------------------------------------

def test_generation_reports_its_progress_to_the_end(tiny_checkpoint, tmp_path):
    from engine.events import PERFORMER, Note
    from engine.offline.continuation import continue_notes
    from jamtui.offline_commands import load_model

    model, tokenizer = load_model(tiny_checkpoint)
    prompt = [Note(i * 0.25, i * 0.25 + 0.2, 60 + i, 80, PERFORMER) for i in range(4)]
    seen: list[tuple[float, float]] = []
    continue_notes(model, tokenizer, prompt, 5.0, on_progress=lambda done, total: seen.append((done, total)))
    assert [done for done, _ in seen] == pytest.approx([2.0, 4.0, 5.0]) and {total for _, total in seen} == {5.0}


def test_no_progress_bar_outside_a_terminal():
    from jamtui.progress import progress_bar

    with progress_bar("jamtui generate") as on_progress:  # pytest's stderr is not a terminal
        assert on_progress is None
