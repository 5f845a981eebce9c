"""The help screen (`?`, F1) lists the live keymap, a preset's remapping included, and closes on
Esc, q or ? without quitting; the footer keeps Quit and Help in sight at 80x24."""
from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
from textual.widgets import DataTable, Footer

from engine.presets.schema import Preset
from jamtui.screens.help import HelpScreen
from jamtui.screens.jam import JamScreen
from jamtui.widgets.eventlog import EventLog
from tests.ui.rig import Rig, async_test, make_app, ports_listed, status_text, wait_for


def help_rows(app) -> list[tuple[str, ...]]:
    table = app.screen.query_one("#help-keys", DataTable)
    return [tuple(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]


@async_test
async def test_help_lists_the_live_keymap_and_closes_without_quitting(tmp_path):
    app = make_app(Rig(), tmp_path, preset=Preset(name="mine", hotkeys={"panic": "x", "help": "h,f1"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await ports_listed(pilot)
        await pilot.press("h")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = help_rows(app)
        assert ("x", "Panic", "panic") in rows  # the preset's key, not the shipped p
        assert ("space", "Start/stop", "start_stop") in rows and ("q", "Quit", "quit") in rows
        assert ("h f1", "Help", "help") in rows
        ids = {row[2] for row in rows}
        assert ids == {b.id for b in [*JamScreen.BINDINGS, *app.BINDINGS]}  # every binding, rescan too
        for close in ("escape", "q", "question_mark"):
            await pilot.press(close)
            await pilot.pause()
            assert isinstance(app.screen, JamScreen) and app.is_running
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, JamScreen)


@async_test
async def test_question_mark_opens_help_and_the_footer_keeps_quit_at_80x24(tmp_path):
    app = make_app(Rig(), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ports_listed(pilot)
        footer = app.screen.query_one(Footer)
        keys = list(footer.query("FooterKey"))
        right_edge = max(item.region.right for item in keys)
        quit_key = next(item for item in keys if item.description == "Quit")
        assert quit_key.region.right <= 80 and right_edge <= 80
        assert quit_key.region.width > 0
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert ("? f1", "Help", "help") in help_rows(app)


@pytest.mark.skipif(importlib.util.find_spec("pytest_textual_snapshot") is None,
                    reason="needs pytest-textual-snapshot")
def test_help_screen_snapshot_at_80x24(snap_compare, tmp_path):
    model = SimpleNamespace(device=SimpleNamespace(type="cpu"), dtype="torch.float32")

    async def ready(pilot) -> None:
        await ports_listed(pilot)
        await wait_for(pilot, lambda: "cpu float32" in status_text(pilot.app))
        pilot.app.screen.query_one(EventLog).clear()  # log lines carry the time of day
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))

    app = make_app(Rig(), tmp_path, (model, None), preset=Preset(hotkeys={"panic": "x"}))
    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)
