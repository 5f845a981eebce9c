"""Shared fixtures: a JACK dummy server started and stopped by PID for the tests that need real ports."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A suite started in the background by a shell (`nohup make test &`) inherits SIGINT ignored, and
# so would every jamtui a test starts: the Ctrl-C the tests send would do nothing. Handled here
# instead of ignored, it is back to the default in each child (exec resets handled signals), as
# when jamtui starts from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _require_jack() -> bool:
    return os.environ.get("JAMTUI_REQUIRE_JACK") == "1"


@pytest.fixture(scope="session")
def jack_server():
    """A private JACK server (dummy driver, no sound hardware); yields its name.

    Sets JACK_DEFAULT_SERVER for this process and its children. Skips when jackd is not
    installed, unless JAMTUI_REQUIRE_JACK=1 (CI), where that is a failure.
    """
    jackd = shutil.which("jackd")
    if jackd is None:
        if _require_jack():
            pytest.fail("jackd is not installed but JAMTUI_REQUIRE_JACK=1")
        pytest.skip("jackd is not installed (apt-get install jackd2)")
    name = f"jamtui-test-{uuid.uuid4().hex[:8]}"
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}.log"
    log_file = open(log_path, "wb")
    # A 1,024-frame period (21 ms): at 64 frames (1.3 ms) the dummy driver misses its cycles on a
    # busy 2-core box without real-time scheduling, and JACK drops MIDI in those cycles ("message
    # buffer overruns" in its log); under two busy loops the port tests failed in 2 runs of 4 at 64,
    # 1 of 8 at 256, 0 of 10 at 1,024. The tests check what arrives, not how soon (the bench does).
    proc = subprocess.Popen(
        [jackd, "-n", name, "-d", "dummy", "-r", "48000", "-p", "1024"],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER", "JAMTUI_MIDI_API")}
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1", JAMTUI_MIDI_API="jack")
    try:
        _wait_for_jack(proc, log_path)
        yield name
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log_file.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_for_jack(proc: subprocess.Popen, log_path: Path) -> None:
    import rtmidi

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jackd exited with {proc.returncode}: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            probe = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="jamtui-test-probe")
        except Exception:  # noqa: BLE001 - server still starting
            time.sleep(0.1)
            continue
        probe.delete()
        return
    pytest.fail(f"jackd did not come up in 15 s: {log_path.read_text(errors='replace')[-2000:]}")


OWN_PROCESS_ENV = "JAMTUI_TEST_OWN_PROCESS"


def in_own_process(request) -> bool:
    """For a test that starts a JACK server of its own mid-test: libjack keeps per-process state,
    and a process that already has clients on another server (the session's) can crash in it. True
    in the fresh pytest process that runs the test's body; otherwise runs the test there, fails
    with its output if it fails, and returns False (the caller returns at once)."""
    if os.environ.get(OWN_PROCESS_ENV) == request.node.nodeid:
        return True
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
                            cwd=REPO, env={**os.environ, OWN_PROCESS_ENV: request.node.nodeid},
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"in its own process:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    return False


def jamtui_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "jamtui", *args]


def wait_for(predicate, timeout_s: float = 10.0, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    return predicate()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A one-layer random model saved as a real checkpoint with the real tokenizer (fast)."""
    from engine.model.checkpoint import new_hf_model, save_checkpoint
    from engine.model.config import ModelConfig
    from engine.tokens.tokenizer import JamTokenizer

    tokenizer = JamTokenizer()
    path = tmp_path_factory.mktemp("tiny-ckpt")
    model = new_hf_model(ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_embd=32, n_head=2, n_kv_head=2,
                                     intermediate_size=64, max_len=1024), seed=0)
    save_checkpoint(path, model, tokenizer.to_dict(), model_card="test")
    return path
