"""SessionRecorder: the .mid and sidecar it writes and names it never reuses (crash recovery:
test_recorder_recovery.py)."""
from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import mido
import pytest

from engine.clock import FakeClock
from engine.events import Kind, MidiEvent, control, note_off, note_on
from engine.midi.recorder import JOURNAL_SUFFIX, SessionRecorder
from tests.engine.recordings import START_NS, TICKS_PER_S, at, read_track, summary
from tests.midi_checks import assert_track_balanced


def track_end_tick(track: mido.MidiTrack) -> int:
    return sum(msg.time for msg in track)


def test_known_duet_round_trips_through_the_midi_file(tmp_path: Path) -> None:
    clock = FakeClock(START_NS)
    rec = SessionRecorder(tmp_path, clock, meta={"preset": "warm"}, name="duet")
    rec.start()
    rec.record("performer", note_on(at(clock, 0.0), 60, 100))
    rec.record("performer", MidiEvent(clock.now_ns(), Kind.CLOCK))
    rec.record("performer", note_off(at(clock, 0.5), 60))
    rec.record("ai", note_on(at(clock, 0.5), 64, 90, channel=1))
    rec.record("performer", control(at(clock, 0.75), 64, 127))
    rec.record("ai", MidiEvent(at(clock, 0.8), Kind.PITCH_BEND, 1, 0, 8192 + 1000))
    rec.record("ai", MidiEvent(clock.now_ns(), Kind.ACTIVE_SENSING))
    rec.record("ai", note_off(at(clock, 1.0), 64, channel=1))
    rec.record("performer", note_on(at(clock, 1.25), 67, 80))  # still held at the end
    rec.record("ai", MidiEvent(at(clock, 1.3), Kind.PROGRAM, 1, 0, 5))
    rec.record("ai", note_on(at(clock, 1.5), 71, 70, channel=1))  # still held at the end
    rec.update_meta(in_port="Keys", out_port="Synth")
    at(clock, 2.0)
    paths = rec.close(timings={"latency_ms_p50": 12.5})

    assert paths.midi_path == tmp_path / "duet.mid"
    assert paths.sidecar_path == tmp_path / "duet.json"
    assert rec.close() == paths  # idempotent
    assert not (tmp_path / ("duet" + JOURNAL_SUFFIX)).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["duet.json", "duet.mid"]

    midi = mido.MidiFile(paths.midi_path)
    assert midi.type == 1
    assert midi.ticks_per_beat == 480
    assert [t.name for t in midi.tracks] == ["performer", "ai"]
    tempos = [m.tempo for t in midi.tracks for m in t if m.type == "set_tempo"]
    assert tempos == [500000]
    performer, ai = (read_track(t) for t in midi.tracks)
    assert summary(performer) == [
        (0, "note_on", 0, 60, 100),
        (480, "note_off", 0, 60, 0),
        (720, "control_change", 0, 64, 127),
        (1200, "note_on", 0, 67, 80),
        (1920, "note_off", 0, 67, 0),  # closed at the end
        (1920, "control_change", 0, 64, 0),  # pedal lifted at the end
    ]
    assert summary(ai) == [
        (480, "note_on", 1, 64, 90),
        (768, "pitchwheel", 1, 1000),
        (960, "note_off", 1, 64, 0),
        (1248, "program_change", 1, 5),
        (1440, "note_on", 1, 71, 70),
        (1920, "note_off", 1, 71, 0),
    ]
    assert_track_balanced(performer)
    assert_track_balanced(ai)
    assert [track_end_tick(t) for t in midi.tracks] == [1920, 1920]
    assert midi.length == pytest.approx(2.0)

    sidecar = json.loads(paths.sidecar_path.read_text())
    assert sidecar["status"] == "complete"
    assert sidecar["base"] == "duet"
    assert sidecar["format"] == 1
    assert sidecar["clock_start_ns"] == START_NS
    assert sidecar["counts"] == {"performer": 4, "ai": 5}
    assert sidecar["duration_s"] == pytest.approx(2.0)
    assert sidecar["meta"] == {"preset": "warm", "in_port": "Keys", "out_port": "Synth"}
    assert sidecar["timings"] == {"latency_ms_p50": 12.5}
    assert sidecar["skipped_lines"] == 0
    assert sidecar["wall_start"]


def test_many_odd_times_do_not_drift(tmp_path: Path) -> None:
    clock = FakeClock(START_NS)
    rec = SessionRecorder(tmp_path, clock, name="drift")
    rec.start()
    times_s = [i * 0.0123457 for i in range(1, 2001)]
    for i, t_s in enumerate(times_s):
        rec.record("performer", note_on(at(clock, t_s), 40 + i % 40, 64))
        rec.record("performer", note_off(clock.now_ns(), 40 + i % 40))
    paths = rec.close()
    events = read_track(mido.MidiFile(paths.midi_path).tracks[0])
    ons = [tick for tick, msg in events if msg.type == "note_on"]
    assert len(ons) == len(times_s)
    for tick, t_s in zip(ons, times_s):
        assert abs(tick - t_s * TICKS_PER_S) <= 0.5 + 1e-9


def test_unknown_players_fail_and_events_outside_the_session_drop(tmp_path: Path) -> None:
    clock = FakeClock(START_NS)
    rec = SessionRecorder(tmp_path, clock, name="edges")
    rec.record("performer", note_on(clock.now_ns(), 50, 100))  # before start: dropped
    rec.start()
    with pytest.raises(ValueError):
        rec.record("drummer", note_on(clock.now_ns(), 50, 100))
    rec.record("ai", note_on(at(clock, 0.1), 52, 100))
    paths = rec.close()
    rec.record("ai", note_on(at(clock, 0.2), 54, 100))  # after close: dropped, no error
    assert json.loads(paths.sidecar_path.read_text())["counts"] == {"performer": 0, "ai": 1}


def test_records_from_many_threads(tmp_path: Path) -> None:
    clock = FakeClock(START_NS)
    rec = SessionRecorder(tmp_path, clock, name="threads", flush_interval_s=0.001)
    rec.start()

    def play(player: str) -> None:
        for i in range(500):
            rec.record(player, note_on(clock.now_ns(), i % 128, 1 + i % 127))
            rec.record(player, note_off(clock.now_ns(), i % 128))

    threads = [threading.Thread(target=play, args=(p,)) for p in ("performer", "ai", "ai")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    paths = rec.close()
    assert json.loads(paths.sidecar_path.read_text())["counts"] == {"performer": 1000, "ai": 2000}


def test_same_name_never_overwrites(tmp_path: Path) -> None:
    clock = FakeClock(START_NS)
    first = SessionRecorder(tmp_path, clock, name="take")
    second = SessionRecorder(tmp_path, clock, name="take")
    first.start()
    second.start()  # while the first is still recording
    first.record("performer", note_on(at(clock, 0.1), 60, 100))
    second.record("performer", note_on(clock.now_ns(), 72, 100))
    paths_a, paths_b = first.close(), second.close()
    third = SessionRecorder(tmp_path, clock, name="take")
    third.start()  # after both finished
    paths_c = third.close()
    midi_paths = {paths_a.midi_path, paths_b.midi_path, paths_c.midi_path}
    assert len(midi_paths) == 3
    assert all(p.exists() for p in midi_paths)
    notes = [[m.note for _, m in read_track(mido.MidiFile(paths.midi_path).tracks[0])
              if m.type == "note_on"] for paths in (paths_a, paths_b)]
    assert notes == [[60], [72]]


def test_default_name_is_dated(tmp_path: Path) -> None:
    first = SessionRecorder(tmp_path, FakeClock())
    second = SessionRecorder(tmp_path, FakeClock())
    first.start()
    second.start()
    assert re.fullmatch(r"jam-\d{8}-\d{6}", first.base_name)
    assert re.fullmatch(r"jam-\d{8}-\d{6}(-2)?", second.base_name)
    assert second.base_name != first.base_name
    first.close()
    second.close()
