"""Help (`?`, F1) over a panel lists the panel's own keys and the app's it leaves free; a `?` typed
into a field of the training screen stays text."""
from __future__ import annotations

from textual.widgets import DataTable, Input

from engine.presets.schema import Preset
from jamtui.screens.help import HelpScreen
from jamtui.screens.presets import PresetsScreen
from jamtui.screens.styles import StylesScreen
from jamtui.screens.training import TrainingScreen
from tests.ui.rig import Rig, async_test, make_app, ports_listed, wait_for


def help_rows(app) -> list[tuple[str, ...]]:
    table = app.screen.query_one("#help-keys", DataTable)
    return [tuple(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]


@async_test
async def test_help_over_the_presets_panel_lists_its_keys(tmp_path):
    app = make_app(Rig(), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ports_listed(pilot)
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = help_rows(app)
        assert rows == [("esc q", "Close", "presets_close"), ("-", "Nudge down", "presets_nudge_down"),
                        ("+ =", "Nudge up", "presets_nudge_up"), ("^s", "Save as", "presets_save"),
                        ("? f1", "Help", "help")]  # q closes the panel here: Quit is not listed
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert help_rows(app) == rows


@async_test
async def test_a_preset_remapping_help_moves_it_on_the_panels_too(tmp_path):
    app = make_app(Rig(), tmp_path, preset=Preset(name="mine", hotkeys={"help": "h,f1"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await ports_listed(pilot)
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))
        await pilot.press("question_mark")  # no longer the help key
        await pilot.pause()
        assert isinstance(app.screen, PresetsScreen)
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert help_rows(app)[-1] == ("h f1", "Help", "help")


@async_test
async def test_help_over_the_styles_panel_lists_its_hidden_keys_too(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    app = make_app(Rig(), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ports_listed(pilot)
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, StylesScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        ids = [row[2] for row in help_rows(app)]
        assert ids == [b.id for b in StylesScreen.BINDINGS] and ids[-1] == "help"
        assert ("[", "Weight B down", "styles_weight_b_down") in help_rows(app)


@async_test
async def test_a_question_mark_typed_in_a_training_field_stays_text(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    app = make_app(Rig(), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ports_listed(pilot)
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainingScreen))
        training = app.screen
        field = training.query_one("#train-style", Input)
        assert training.focused is field
        await pilot.press("w", "h", "y", "question_mark")
        await pilot.pause()
        assert app.screen is training and field.value == "why?"
        await pilot.press("f1")  # not text: help opens, with the training keys
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert ("^s", "Start", "training_start") in help_rows(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is training)
        training.query_one("#train-start").focus()  # off the fields, ? is help again
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
