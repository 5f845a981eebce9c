"""Snapshots of the jam screen with the piano roll drawing a known phrase and answer (what the
bridge posts, `NotesHeard`), at 80x24 and at 120x40."""
from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from engine.duet.heard import RecentNotes
from engine.duet.listening import listen_to_notes
from engine.events import AI, PERFORMER, Note
from engine.tokens.keys import Key
from jamtui.messages import NotesHeard
from jamtui.widgets.eventlog import EventLog
from jamtui.widgets.piano_roll import PianoRoll
from tests.ui.rig import Rig, make_app, ports_listed, status_text, wait_for

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pytest_textual_snapshot") is None,
                                reason="needs pytest-textual-snapshot")


def phrase_and_answer() -> RecentNotes:
    """A C major line over a held bass, the AI's answer half sounded, the rest written ahead."""
    line = [(60, 100), (64, 60), (67, 90), (72, 110), (71, 50), (67, 70), (64, 40), (62, 95)]
    performer = tuple(Note(1.0 + 0.25 * i, 1.2 + 0.25 * i, p, v, PERFORMER) for i, (p, v) in enumerate(line))
    performer += (Note(3.0, 5.0, 48, 70, PERFORMER), Note(3.0, 5.0, 55, 50, PERFORMER))
    answer = [(67, 90), (69, 50), (71, 100), (72, 60), (74, 85), (76, 40)]
    sounded = tuple(Note(5.4 + 0.2 * i, 5.6 + 0.2 * i, p, v, AI) for i, (p, v) in enumerate(answer))
    ahead = tuple(Note(6.8 + 0.25 * i, 7.0 + 0.25 * i, p, 80, AI) for i, p in enumerate([74, 72, 71, 69, 67, 65]))
    return RecentNotes(6.7, performer, sounded, ahead, False, listen_to_notes(performer, 3.3), Key(0, False))


def jam_screen_with_a_roll(snap_compare, tmp_path, size: tuple[int, int]) -> bool:
    model = SimpleNamespace(device=SimpleNamespace(type="cpu"), dtype="torch.float32")

    async def ready(pilot) -> None:
        await ports_listed(pilot)
        await wait_for(pilot, lambda: "cpu float32" in status_text(pilot.app))
        pilot.app.screen.query_one(EventLog).clear()  # log lines carry the time of day
        pilot.app.screen.post_message(NotesHeard(phrase_and_answer()))
        await wait_for(pilot, lambda: pilot.app.screen.query_one(PianoRoll).recent is not None)
        await wait_for(pilot, lambda: "hears   C  key C" in status_text(pilot.app))

    return snap_compare(make_app(Rig(), tmp_path, (model, None)), terminal_size=size, run_before=ready)


def test_jam_screen_with_the_roll_at_80x24(snap_compare, tmp_path):
    assert jam_screen_with_a_roll(snap_compare, tmp_path, (80, 24))


def test_jam_screen_with_the_roll_at_120x40(snap_compare, tmp_path):
    assert jam_screen_with_a_roll(snap_compare, tmp_path, (120, 40))
