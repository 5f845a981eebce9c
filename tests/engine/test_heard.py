"""What a face reads of a jam and the AI's mute, on their own: `MutableOutput` keeps new notes
back and lets every note that sounded end; `HeardNotes` follows both players from the recorded
events, passes on to the recorder only what sounded, and stays bounded; `TapTempo` counts taps."""
from __future__ import annotations

from engine.clock import FakeClock
from engine.duet.heard import KEPT_NOTES, HeardNotes
from engine.duet.mute import MutableOutput
from engine.duet.tap_tempo import TapTempo
from engine.events import ALL_NOTES_OFF_CC, control, note_off, note_on
from engine.midi.memory import MemoryOutputPort
from tests.midi_checks import assert_balanced

S = 1_000_000_000


class Journal:
    """A recorder that keeps what it is given (the `SessionRecorder.record` protocol)."""

    def __init__(self) -> None:
        self.items = []

    def record(self, player, event) -> None:
        self.items.append((player, event.kind, event.number))


def test_muted_output_keeps_new_notes_back_and_lets_sounding_ones_end():
    port = MemoryOutputPort(FakeClock(), name="synth")
    out = MutableOutput(port)
    assert out.name == "synth" and not out.muted
    out.send(note_on(0, 60, 90).to_bytes())
    out.set_muted(True)
    out.send(note_on(0, 64, 90).to_bytes())
    assert out.heard_last is False
    out.send(note_off(0, 60).to_bytes())  # began before the mute: it ends
    assert out.heard_last is True
    out.send(note_off(0, 64).to_bytes())  # never sounded: its off is kept back too
    assert out.heard_last is False
    out.send(control(0, ALL_NOTES_OFF_CC, 0).to_bytes())
    out.set_muted(False)
    out.send(note_on(0, 64, 90).to_bytes())
    out.send(note_off(0, 64).to_bytes())
    assert [(e.kind.name, e.number) for e in port.events] == [
        ("NOTE_ON", 60), ("NOTE_OFF", 60), ("CONTROL", ALL_NOTES_OFF_CC), ("NOTE_ON", 64), ("NOTE_OFF", 64)]
    assert_balanced(port.events)


def test_heard_notes_follow_both_players_and_record_only_what_sounded():
    sounded = iter([True, True, False, False])
    heard = HeardNotes(ai_heard=lambda: next(sounded), origin_ns=lambda: 10 * S)  # session time 0 at 10 s
    journal = Journal()
    heard.recorder = journal
    heard.record("performer", note_on(11 * S, 60, 100))
    heard.record("performer", note_off(12 * S, 60))
    heard.record("performer", note_on(12 * S, 64, 50))  # still down at 3 s
    heard.record("ai", note_on(12 * S, 67, 80))
    heard.record("ai", note_off(12 * S + S // 2, 67))
    heard.record("ai", note_on(13 * S, 69, 80))  # kept back by the mute
    heard.record("ai", note_off(13 * S + S // 2, 69))
    recent = heard.recent(0.0, 3.0)
    assert [(n.start_s, n.end_s, n.pitch) for n in recent.performer] == [(1.0, 2.0, 60), (2.0, 3.0, 64)]
    assert [(n.start_s, n.end_s, n.pitch) for n in recent.ai_sounded] == [(2.0, 2.5, 67)]
    assert [item[0] for item in journal.items] == ["performer"] * 3 + ["ai"] * 2
    assert recent.listening is not None and recent.key is not None
    assert heard.recent(2.6, 3.0).ai_sounded == ()  # ended before the window


def test_written_ahead_notes_are_those_after_now_and_none_while_muted():
    from engine.events import AI, Note

    heard = HeardNotes()
    part = [Note(1.0, 1.5, 60, 80, AI), Note(3.5, 4.0, 62, 80, AI)]
    assert [n.pitch for n in heard.recent(0.0, 3.0, part, listen=False).ai_ahead] == [62]
    assert heard.recent(0.0, 3.0, part, ai_muted=True, listen=False).ai_ahead == ()


def test_heard_notes_stay_bounded_over_a_long_jam():
    heard = HeardNotes()
    for i in range(3 * KEPT_NOTES):
        heard.record("performer", note_on(i * S // 100, 60 + i % 12, 80))
        heard.record("performer", note_off(i * S // 100 + 1, 60 + i % 12))
    assert len(heard.recent(-1.0, 3 * KEPT_NOTES / 100, listen=False).performer) <= KEPT_NOTES


def test_taps_give_a_tempo_and_a_long_pause_starts_again():
    taps = TapTempo()
    assert taps.tap(1.0) is None
    assert taps.tap(1.5) == 120.0
    assert taps.tap(2.0) == 120.0 and taps.tap(2.6) == 120.0  # the median of the intervals
    assert taps.tap(10.0) is None  # a new count
    assert taps.tap(10.001) == 300.0  # kept within a preset's range
