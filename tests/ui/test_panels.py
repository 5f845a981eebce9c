"""The panels open over a running jam (F2 presets, F3 styles, F4 training) and what they pick
reaches the jam through the same path as stepping presets."""
from __future__ import annotations

from textual.widgets import DataTable

from engine.model.adapters import write_random_adapter
from jamtui.screens.jam import JamScreen
from jamtui.screens.presets import PresetsScreen
from jamtui.screens.styles import StylesScreen
from jamtui.screens.training import TrainingScreen
from tests.engine.models import TINY
from tests.ui.rig import Rig, async_test, make_app, start, wait_for


def jam(app):
    return app.bridge.jam


def row_index(table: DataTable, name: str) -> int:
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)].index(name)


@async_test
async def test_a_preset_picked_in_the_panel_reaches_the_running_jam(tmp_path, jam_model):
    app = make_app(Rig(), tmp_path, jam_model)
    async with app.run_test(size=(100, 30)) as pilot:
        await start(app, pilot)
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))
        listing = app.screen.query_one("#presets-list", DataTable)
        listing.move_cursor(row=row_index(listing, "accompany"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: jam(app).preset.name == "accompany")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, JamScreen))
        assert app.screen.preset_steps.current.name == "accompany"


@async_test
async def test_a_style_picked_in_the_panel_is_played(tmp_path, jam_model, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from engine.user_dirs import styles_dir

    write_random_adapter(styles_dir() / "mine", TINY, rank=4, targets=["q_proj"])
    app = make_app(Rig(), tmp_path, jam_model)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, StylesScreen))
        app.screen.switch_style("mine:0.5")  # what the panel hands on when one is picked and played
        adapters = app.screen_stack[-2].preset_steps.current.model.adapters
        assert [(a.path.rsplit("/", 1)[-1], a.weight) for a in adapters] == [("mine", 0.5)]
        app.screen.switch_style("gone:1")  # removed since it was listed: one line in the log, no crash
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, JamScreen))
        assert "gone" in " ".join(str(line) for line in app.screen.query_one("#log").lines)


@async_test
async def test_the_training_screen_opens_over_the_jam_and_closes_back(tmp_path, jam_model):
    app = make_app(Rig(), tmp_path, jam_model)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(app, pilot)
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainingScreen))
        assert app.bridge.jam.running  # the jam goes on under it
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, JamScreen))
