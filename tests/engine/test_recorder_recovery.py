"""SessionRecorder crash recovery: journals of a live recorder left alone, torn and corrupt
lines, and a recording that survives kill -9."""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import mido
import pytest

from engine.clock import FakeClock
from engine.events import note_off, note_on
from engine.midi.recorder import JOURNAL_SUFFIX, SessionRecorder, recover
from tests.conftest import REPO
from tests.engine.recordings import START_NS, TICKS_PER_S, at, read_track, summary
from tests.midi_checks import assert_track_balanced

try:
    import fcntl
except ImportError:
    fcntl = None


def start_live_journal(directory: Path, name: str) -> tuple[SessionRecorder, Path]:
    """A live recorder with a flushed journal: header, a meta line and three events."""
    clock = FakeClock(START_NS)
    rec = SessionRecorder(directory, clock, name=name, meta={"preset": "p"})
    rec.start()
    rec.record("performer", note_on(at(clock, 0.25), 60, 100))
    rec.update_meta(out_port="Synth")
    rec.record("ai", note_on(at(clock, 0.5), 64, 100))
    rec.record("performer", note_off(at(clock, 0.75), 60))
    rec.flush()
    return rec, rec.journal_path


def test_recover_leaves_a_live_recorders_journal_alone(tmp_path: Path) -> None:
    rec, journal = start_live_journal(tmp_path, "live")
    before = journal.read_bytes()
    assert recover(tmp_path) == []
    assert journal.read_bytes() == before
    assert not (tmp_path / "live.mid").exists()
    paths = rec.close()
    assert json.loads(paths.sidecar_path.read_text())["status"] == "complete"


@pytest.mark.skipif(fcntl is None, reason="advisory locks need fcntl")
def test_recover_skips_a_journal_locked_by_another_writer(tmp_path: Path) -> None:
    rec, journal = start_live_journal(tmp_path / "live", "locked")
    copy = tmp_path / ("locked" + JOURNAL_SUFFIX)
    shutil.copyfile(journal, copy)
    rec.close()
    with open(copy, "ab") as other_writer:
        fcntl.flock(other_writer.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert recover(tmp_path) == []
        assert copy.exists()
    assert [p.midi_path.name for p in recover(tmp_path)] == ["locked.mid"]
    assert not copy.exists()


def crashed_journal(tmp_path: Path, name: str) -> Path:
    """A journal as a crashed recorder leaves it: copied from a live one, never closed."""
    rec, journal = start_live_journal(tmp_path / "live", name)
    copy = tmp_path / (name + JOURNAL_SUFFIX)
    shutil.copyfile(journal, copy)
    rec.close()
    return copy


def test_recover_tolerates_a_torn_last_line(tmp_path: Path) -> None:
    journal = crashed_journal(tmp_path, "torn")
    with open(journal, "ab") as f:
        f.write(b'{"p":"ai","t_s":0.9,"kind":"NOTE_O')
    [paths] = recover(tmp_path)
    assert not journal.exists()
    sidecar = json.loads(paths.sidecar_path.read_text())
    assert sidecar["status"] == "recovered"
    assert sidecar["skipped_lines"] == 1
    assert sidecar["counts"] == {"performer": 2, "ai": 1}
    assert sidecar["meta"] == {"preset": "p", "out_port": "Synth"}
    assert sidecar["duration_s"] == pytest.approx(0.75)
    midi = mido.MidiFile(paths.midi_path)
    assert [t.name for t in midi.tracks] == ["performer", "ai"]
    performer, ai = (read_track(t) for t in midi.tracks)
    assert summary(performer) == [(240, "note_on", 0, 60, 100), (720, "note_off", 0, 60, 0)]
    assert summary(ai) == [(480, "note_on", 0, 64, 100), (720, "note_off", 0, 64, 0)]
    assert recover(tmp_path) == []  # nothing left to do


def test_recover_skips_and_counts_corrupt_middle_lines(tmp_path: Path) -> None:
    journal = crashed_journal(tmp_path, "noisy")
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[2:2] = [b"not json\n", b'{"p":"drummer","t_s":0.1,"kind":"NOTE_ON","ch":0,"n":1,"v":1}\n',
                  b'{"p":"ai","t_s":0.1,"kind":"CLOCK","ch":0,"n":0,"v":0}\n', b"[1, 2]\n"]
    journal.write_bytes(b"".join(lines))
    [paths] = recover(tmp_path)
    sidecar = json.loads(paths.sidecar_path.read_text())
    assert sidecar["skipped_lines"] == 4
    assert sidecar["counts"] == {"performer": 2, "ai": 1}


def test_recover_renames_a_journal_with_a_corrupt_header(tmp_path: Path) -> None:
    journal = tmp_path / ("broken" + JOURNAL_SUFFIX)
    journal.write_bytes(b'{"format": 1, "ba\n'
                        b'{"p":"ai","t_s":0.1,"kind":"NOTE_ON","ch":0,"n":60,"v":9}\n')
    assert recover(tmp_path) == []
    assert not journal.exists()
    corrupt = tmp_path / ("broken" + JOURNAL_SUFFIX + ".corrupt")
    assert corrupt.read_bytes().startswith(b'{"format": 1, "ba\n')
    assert not (tmp_path / "broken.mid").exists()
    # The name stays taken, so a new recording does not shadow the evidence.
    rec = SessionRecorder(tmp_path, FakeClock(), name="broken")
    rec.start()
    assert rec.base_name == "broken-2"
    rec.close()


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from engine.clock import MonotonicClock
    from engine.events import note_off, note_on
    from engine.midi.recorder import SessionRecorder

    clock = MonotonicClock()
    rec = SessionRecorder(Path(sys.argv[1]), clock, name="crash")
    rec.start()
    print("start", rec.clock_start_ns, flush=True)
    i = 0
    while True:
        t_ns = clock.now_ns()
        if i:
            rec.record("performer", note_off(t_ns, 48 + (i - 1) % 24))
            rec.record("ai", note_off(t_ns, 72 + (i - 1) % 24))
        rec.record("performer", note_on(t_ns, 48 + i % 24, 100))
        rec.record("ai", note_on(t_ns, 72 + i % 24, 90))
        print(i, t_ns, flush=True)
        i += 1
        time.sleep(0.05)
""")


def test_kill_9_loses_at_most_the_last_second(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdout() -> None:
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    def next_line() -> str:
        line = lines.get(timeout=60)
        if line is None:
            pytest.fail(f"child exited early:\n{child.stderr.read()}")
        return line

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        first = next_line().split()
        assert first[0] == "start"
        clock_start_ns = int(first[1])
        reported = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline or len(reported) < 10:
            reported.append(next_line())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    while (line := lines.get(timeout=60)) is not None:
        reported.append(line)
    child.stderr.close()
    # A line cut by the kill has no newline: the child may or may not have recorded it.
    complete = [line.split() for line in reported if line.endswith("\n")]
    last_index, last_t_ns = int(complete[-1][0]), int(complete[-1][1])
    last_reported_s = (last_t_ns - clock_start_ns) / 1e9

    journal = tmp_path / ("crash" + JOURNAL_SUFFIX)
    assert journal.exists()
    [paths] = recover(tmp_path)
    assert paths.midi_path == tmp_path / "crash.mid"
    assert not journal.exists()
    sidecar = json.loads(paths.sidecar_path.read_text())
    assert sidecar["status"] == "recovered"
    assert sidecar["skipped_lines"] <= 1
    assert sidecar["clock_start_ns"] == clock_start_ns

    midi = mido.MidiFile(paths.midi_path)
    assert [t.name for t in midi.tracks] == ["performer", "ai"]
    performer, ai = (read_track(t) for t in midi.tracks)
    assert_track_balanced(performer)
    assert_track_balanced(ai)
    pitches = [msg.note for _, msg in performer if msg.type == "note_on"]
    assert len(pitches) >= 10
    assert pitches == [48 + i % 24 for i in range(len(pitches))]  # a prefix, nothing reordered
    last_recorded_s = max(tick for tick, _ in performer + ai) / TICKS_PER_S
    assert abs(last_recorded_s - last_reported_s) <= 1.0, (last_index, last_reported_s)
