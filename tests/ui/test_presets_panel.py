"""The presets panel: shipped and user presets with what each sets, one played with Enter, its
values nudged live through `apply_preset`, and the result saved as a new user preset, never over
a file that is there."""
from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import DataTable, Input, Static

from engine.presets.files import load_preset, save_user_preset
from engine.presets.schema import Preset
from jamtui.screens.presets import INJECTIONS, SETTINGS, PresetsScreen, nudged
from tests.ui.rig import async_test


class Host(App):
    def __init__(self, current: Preset, user_dir: Path) -> None:
        super().__init__()
        self.current = current
        self.user_dir = user_dir
        self.applied: list[Preset] = []
        self.dismissed: list[Preset] = []

    def on_mount(self) -> None:
        self.push_screen(PresetsScreen(self.current, apply_preset=self.applied.append, user_dir=self.user_dir),
                         self.dismissed.append)


@pytest.fixture
def user_dir(tmp_path) -> Path:
    return tmp_path / "presets"


def rows(table: DataTable) -> dict[str, list[str]]:
    return {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)[1:]] for i in range(table.row_count)}


def message(app) -> str:
    return str(app.screen.query_one("#presets-message", Static).render())


async def to_setting(pilot, label: str) -> None:
    """Focus the settings table on the row of `label`."""
    table = pilot.app.screen.query_one("#presets-settings", DataTable)
    table.focus()
    table.move_cursor(row=[s.label for s in SETTINGS].index(label))
    await pilot.pause()


@async_test
async def test_the_presets_are_listed_with_what_each_sets(user_dir):
    save_user_preset(load_preset("imitate"), "mine", user_dir=user_dir)
    app = Host(load_preset("default", user_dir=user_dir), user_dir)
    async with app.run_test(size=(80, 24)):
        listed = rows(app.screen.query_one("#presets-list", DataTable))
        assert {"accompany", "call-and-response", "continuous", "default", "imitate", "mine"} <= set(listed)
        assert listed["accompany"] == ["shipped", "accompany", "0.85", "0.10", "har+vel", "3.00"]
        assert listed["default"] == ["shipped", "call&resp", "0.95", "0.30", "int+vel", "you"]
        assert listed["mine"][0] == "user"
        settings = rows(app.screen.query_one("#presets-settings", DataTable))
        assert settings == {"mode": ["call-and-response"], "temperature": ["0.95"],
                            "dial (respond → imitate)": ["0.30"], "injection": ["interleave+velocity"],
                            "density (notes/s)": ["follow you"]}
        # The one playing is the one highlighted, its description shown.
        assert "comping-flavoured" in str(app.screen.query_one("#presets-about", Static).render())


@async_test
async def test_enter_plays_the_preset_highlighted(user_dir):
    app = Host(load_preset("default", user_dir=user_dir), user_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        listing = app.screen.query_one("#presets-list", DataTable)
        listing.move_cursor(row=list(rows(listing)).index("accompany"))
        await pilot.press("enter")
        assert [p.name for p in app.applied] == ["accompany"]
        assert rows(app.screen.query_one("#presets-settings", DataTable))["mode"] == ["accompany"]
        await pilot.press("escape")
        assert app.dismissed[0].name == "accompany"


@async_test
async def test_nudges_reach_the_jam_at_once_and_stay_in_range(user_dir):
    app = Host(load_preset("default", user_dir=user_dir), user_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await to_setting(pilot, "temperature")
        await pilot.press("plus", "plus")
        assert [p.sampling.temperature for p in app.applied] == [1.0, 1.05]
        await to_setting(pilot, "dial (respond → imitate)")
        await pilot.press(*["minus"] * 7)  # 0.30 down to 0, then it stays
        assert app.applied[-1].injection.respond_imitate == 0.0 and len(app.applied) == 8
        assert "stays at 0.00" in message(app)
        await to_setting(pilot, "density (notes/s)")
        await pilot.press("plus", "plus")
        assert app.applied[-1].conditioning.density_nps == 1.0
        await to_setting(pilot, "mode")
        await pilot.press("plus")
        assert app.applied[-1].mode == "accompany"
        await to_setting(pilot, "injection")
        await pilot.press("minus")
        assert app.applied[-1].injection.strategy != ("interleave", "velocity")
        # Everything else is the preset as it was; the panel says it is changed.
        last = app.applied[-1]
        assert last.name == "default" and last.sampling.temperature == 1.05 and last.limits == app.current.limits
        assert "unsaved" in str(app.screen.query_one("#presets-live", Static).render())


@async_test
async def test_a_nudged_preset_is_saved_as_a_new_file_and_never_over_one(user_dir):
    app = Host(load_preset("default", user_dir=user_dir), user_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await to_setting(pilot, "temperature")
        await pilot.press("minus")  # 0.90
        await pilot.press("ctrl+s")  # no name yet: the name field takes the keys
        assert app.screen.focused is app.screen.query_one("#preset-name", Input)
        await pilot.press(*"late-set", "plus", "enter")  # '-' and '+' are typed or refused, never nudges
        assert app.applied[-1].sampling.temperature == 0.9
        path = user_dir / "late-set.toml"
        assert path.is_file() and "saved preset late-set" in message(app)
        saved = load_preset(path)
        assert saved.name == "late-set" and saved.sampling.temperature == 0.9 and saved.mode == "call-and-response"
        assert app.applied[-1] == saved
        assert rows(app.screen.query_one("#presets-list", DataTable))["late-set"][:3] == ["user", "call&resp", "0.90"]

        text = path.read_text()
        await to_setting(pilot, "temperature")
        await pilot.press("plus")
        app.screen.query_one("#preset-name", Input).focus()
        await pilot.press(*"late-set", "enter")
        assert "late-set.toml" in message(app) and "already exists" in message(app)
        assert path.read_text() == text and not (user_dir / "late-set.toml.bak").exists()
        assert app.is_running


def test_nudges_go_round_the_choices_and_step_density_from_following():
    preset = load_preset("default")
    by_label = {s.label: s for s in SETTINGS}
    injection, density = by_label["injection"], by_label["density (notes/s)"]
    seen, current = [], preset
    for _ in INJECTIONS:
        current = nudged(current, injection, 1)
        seen.append(set(current.injection.strategy))
    assert len(seen) == len(INJECTIONS) and set(preset.injection.strategy) == seen[-1]
    up = nudged(preset, density, 1)
    assert up.conditioning.density_nps == 0.5 and nudged(up, density, -1).conditioning.density_nps is None
    assert nudged(preset, density, -1).conditioning.density_nps is None


@async_test
async def test_everything_fits_at_80x24(user_dir):
    app = Host(load_preset("default", user_dir=user_dir), user_dir)
    async with app.run_test(size=(80, 24)):
        for selector in ("#presets-title", "#presets-list", "#presets-live", "#presets-settings", "#preset-name",
                         "#presets-message", "FooterKey"):
            for widget in app.screen.query(selector):
                region = widget.region
                assert region.right <= 80 and region.bottom <= 24, (selector, region)
                assert region.height > 0 or selector == "#presets-message", (selector, region)
        settings = app.screen.query_one("#presets-settings", DataTable)
        assert settings.region.height >= len(SETTINGS)  # every setting in sight
