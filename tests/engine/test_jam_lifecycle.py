"""The jam's one lifecycle (`engine.duet.jam.Jam`) on a fake clock and in-memory ports: the
preset's model loaded once, start/stop in order ending in silence, recording on and off, the
commands a face sends while it plays (the AI muted, the turn handed over) and what it reads."""
from __future__ import annotations

import json

import mido
import pytest

from engine.clock import FakeClock
from engine.duet.jam import Jam
from engine.events import ALL_NOTES_OFF_CC, ALL_SOUND_OFF_CC, Kind
from engine.midi.memory import MemoryInputPort, MemoryOutputPort
from engine.model.cache import ModelCache
from engine.presets.schema import Preset
from tests.midi_checks import assert_balanced

PHRASE = [60, 64, 67, 72]


class Ports:
    """A port opener over memory ports that keeps what it opened."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, str]] = []
        self.source: MemoryInputPort | None = None
        self.sink: MemoryOutputPort | None = None

    def __call__(self, input_spec: str, output_spec: str, clock):
        self.opened.append((input_spec, output_spec))
        self.source, self.sink = MemoryInputPort("keys"), MemoryOutputPort(clock, name="synth")
        return self.source, self.sink


class CountingLoader:
    def __init__(self, model, tokenizer) -> None:
        self.loaded = model, tokenizer
        self.calls = 0

    def __call__(self, path):
        self.calls += 1
        return self.loaded


def strict_json(path):
    def reject(constant):
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=reject)


def play_phrase(jam: Jam, ports: Ports, start_s: float, step_s: float = 0.2, pitches=PHRASE) -> float:
    """The phrase played on the fake clock; returns when its last key went up."""
    t_s = start_s
    for pitch in pitches:
        jam.advance(t_s)
        ports.source.feed(bytes((0x90, pitch, 90)), jam.clock.now_ns())
        jam.advance(t_s + step_s * 0.9)
        ports.source.feed(bytes((0x80, pitch, 0)), jam.clock.now_ns())
        t_s += step_s
    return t_s


@pytest.fixture
def make_jam(playful, tokenizer, one_thread, tmp_path):
    def make(preset: Preset | None = None, port_opener=None) -> tuple[Jam, Ports, CountingLoader]:
        ports, loader = Ports(), CountingLoader(playful, tokenizer)
        jam = Jam(preset or Preset(), clock=FakeClock(), port_opener=port_opener or ports, models=ModelCache(loader),
                  recordings_dir=tmp_path / "takes")
        return jam, ports, loader

    return make


def test_a_phrase_gets_an_answer_and_stop_ends_in_silence(make_jam):
    jam, ports, _ = make_jam()
    assert jam.start() is True
    assert ports.opened == [("virtual:jamtui in", "virtual:jamtui out")]
    assert jam.running and jam.port_names == ("keys", "synth") and jam.mode == "call-and-response"
    end_s = play_phrase(jam, ports, 0.5)
    jam.advance(end_s + 3.0)
    assert jam.metrics().notes_in == len(PHRASE)
    assert [e.kind for e in jam.events()][:1] == ["ai_phrase_started"]
    summary = jam.stop()
    assert not jam.running
    assert summary.error is None and summary.recording is None
    assert summary.metrics.notes_out > 0 and summary.metrics.responses == 1
    tail = ports.sink.events[-32:]
    assert [(e.kind, e.number) for e in tail[::2]] == [(Kind.CONTROL, ALL_NOTES_OFF_CC)] * 16
    assert ports.source.closed and ports.sink.closed
    assert jam.stop().metrics is None  # a second stop does nothing


def test_the_model_is_loaded_once_for_jam_after_jam(playful, tokenizer, one_thread):
    loader = CountingLoader(playful, tokenizer)
    cache = ModelCache(loader)
    for _ in range(3):
        jam = Jam(Preset(), clock=FakeClock(), port_opener=Ports(), models=cache)
        assert jam.load_model().model is playful
        jam.start()
        jam.stop()
    assert loader.calls == 1


def test_a_stop_before_the_start_keeps_it_from_playing(make_jam):
    jam, ports, _ = make_jam()
    jam.stop()  # a quit while the model loaded
    assert jam.start() is False
    assert ports.opened == [] and not jam.running


def test_a_port_that_fails_to_open_leaves_nothing_running(make_jam):
    def refuse(input_spec, output_spec, clock):
        raise OSError(f"no such port: {output_spec}")

    jam, _, _ = make_jam(port_opener=refuse)
    with pytest.raises(OSError, match="no such port: virtual:jamtui out"):
        jam.start()
    assert not jam.running


def test_recording_without_an_answer_writes_strict_json(make_jam, tmp_path):
    jam, _, _ = make_jam()
    jam.start(record=True)
    journal = jam.recording
    assert journal is not None and journal.parent == tmp_path / "takes"
    jam.advance(2.0)  # nobody plays: no response, no compute
    summary = jam.stop()
    assert summary.recording is not None and summary.recording.exists()
    sidecar = strict_json(summary.recording.with_suffix(".json"))
    assert sidecar["meta"]["preset"] == "default"


def test_recording_on_and_off_while_the_jam_plays(make_jam):
    jam, ports, _ = make_jam()
    jam.start()
    end_s = play_phrase(jam, ports, 0.2)
    assert jam.record(True) is not None
    jam.advance(end_s + 2.0)
    saved = jam.record(False)
    assert saved is not None and saved.suffix == ".mid" and jam.recording is None
    assert jam.record(False) is None  # nothing recording: nothing saved
    assert jam.stop().recording is None


def test_commands_reach_the_session(make_jam):
    jam, ports, _ = make_jam()
    jam.start()
    jam.set_mode("continuous")
    jam.advance(0.5)
    assert jam.mode == "continuous"
    assert jam.set_preset(Preset(name="other", mode="accompany")) is True  # the same (shipped) model
    jam.advance(1.0)
    assert jam.preset.name == "other" and jam.mode == "accompany"
    jam.advance(3.0)
    jam.panic()
    jam.advance(3.1)
    assert "panicked" in [e.kind for e in jam.events()]
    sound_off = [e.channel for e in ports.sink.events if e.kind is Kind.CONTROL and e.number == ALL_SOUND_OFF_CC]
    assert sound_off == list(range(16))
    jam.stop()
    with pytest.raises(RuntimeError, match="not running"):
        jam.set_mode("accompany")


def ons_from(ports: Ports, from_ns: int, until_ns: int | None = None) -> list:
    return [e for e in ports.sink.events if e.is_note_on and e.t_ns >= from_ns and (until_ns is None or e.t_ns < until_ns)]


def test_muted_the_ai_sounds_nothing_new_and_nothing_hangs(make_jam):
    jam, ports, _ = make_jam(Preset(mode="continuous"))
    jam.start(record=True)
    jam.advance(3.0)
    assert ons_from(ports, 0) and not jam.ai_muted
    jam.set_ai_muted(True)
    muted_ns = jam.clock.now_ns()
    jam.advance(6.0)
    unmuted_ns = jam.clock.now_ns()
    assert jam.ai_muted and ons_from(ports, muted_ns, unmuted_ns) == []
    assert jam.metrics().notes_out > len(ons_from(ports, 0))  # the model played on, unheard
    assert jam.recent_notes(3.0).ai_ahead == ()  # nothing is drawn as about to sound either
    jam.set_ai_muted(False)
    jam.advance(9.0)
    assert ons_from(ports, unmuted_ns)  # back in, without a restart
    summary = jam.stop()
    assert_balanced(ports.sink.events)
    [ai_track] = [t for t in mido.MidiFile(summary.recording).tracks if any(m.type == "note_on" for m in t)][-1:]
    assert sum(m.type == "note_on" and m.velocity > 0 for m in ai_track) == len(ons_from(ports, 0))


def test_hand_over_starts_the_answer_at_once(make_jam):
    # A phrase gap of 5 s (three notes are too few to read a pulse from): left alone the AI
    # waits; handed over, it answers within moments.
    jam, ports, _ = make_jam(Preset(phrase_gap_s=5.0))
    jam.start()
    end_s = play_phrase(jam, ports, 0.5, pitches=PHRASE[:3])
    jam.advance(end_s + 1.0)
    assert ons_from(ports, 0) == []
    assert jam.hand_over() is True
    handed_ns = jam.clock.now_ns()
    jam.advance(end_s + 1.5)
    [first, *_] = ons_from(ports, 0)
    assert handed_ns <= first.t_ns < handed_ns + 300_000_000
    assert "ai_phrase_started" in [e.kind for e in jam.events()]
    jam.set_mode("accompany")
    jam.advance(end_s + 1.6)
    assert jam.hand_over() is False  # no turns to hand over
    jam.stop()


def test_hand_over_with_nothing_played_answers_nothing(make_jam):
    jam, ports, _ = make_jam()
    jam.start()
    jam.hand_over()
    jam.advance(2.0)
    assert ons_from(ports, 0) == [] and "ai_phrase_started" not in [e.kind for e in jam.events()]
    jam.stop()


def test_recent_notes_show_both_players_and_what_is_written_ahead(make_jam):
    jam, ports, _ = make_jam()
    jam.start()
    end_s = play_phrase(jam, ports, 0.5)
    jam.advance(end_s + 0.9)  # the answer has begun and is written ahead of the clock
    recent = jam.recent_notes(10.0)
    assert recent.now_s == pytest.approx(end_s + 0.9)
    assert [n.pitch for n in recent.performer] == PHRASE
    assert recent.listening.chord is not None and recent.listening.chord.name == "C"
    assert recent.key is not None and recent.key.name == "C"
    sounded = [e for e in ports.sink.events if e.is_note_on]
    assert [n.pitch for n in recent.ai_sounded] == [e.number for e in sounded]
    assert recent.ai_ahead and all(n.start_s > recent.now_s for n in recent.ai_ahead)
    assert all(n.start_s <= recent.now_s for n in recent.ai_sounded)
    jam.stop()
