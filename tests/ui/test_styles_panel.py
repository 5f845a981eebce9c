"""The styles panel: trained styles listed with their card's figures; one picked, or two blended
with weights, handed on as the `--style` spec the command line reads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import DataTable, Static

from engine.model.adapters import write_random_adapter
from jamtui.cli import parse_styles
from jamtui.screens.styles import StylesScreen, blend_spec, parse_spec, read_styles
from tests.engine.models import TINY
from tests.ui.rig import async_test

CARD = {"style": "mine", "method": "lora", "corpus": {"name": "my-trio", "hours": 1.5},
        "run": {"steps": 1200, "best_step": 1100, "stopped_because": "max steps", "device": "cpu"},
        "validation": {"base": {"bits_per_s": 40.0}, "style": {"bits_per_s": 30.0}}}


class Host(App):
    def __init__(self, current: str = "") -> None:
        super().__init__()
        self.current = current
        self.switched: list[str] = []
        self.dismissed: list[str | None] = []

    def on_mount(self) -> None:
        self.push_screen(StylesScreen(self.current, switch_style=self.switched.append), self.dismissed.append)


@pytest.fixture
def styles(tmp_path, monkeypatch) -> Path:
    """Three styles in the user's styles dir: one with a card, one without, one broken."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from engine.user_dirs import styles_dir

    directory = styles_dir()
    mine = write_random_adapter(directory / "mine", TINY, rank=8, targets=["q_proj", "v_proj"])
    (mine / "card.json").write_text(json.dumps(CARD))
    write_random_adapter(directory / "bebop", TINY, rank=4, targets=["up_proj"])
    broken = directory / "zz-broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3"}))
    return directory


def cells(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


@async_test
async def test_styles_are_listed_with_their_figures(styles):
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(DataTable)
        rows = cells(table)
        assert [r[0] for r in rows] == ["bebop", "mine", "zz-broken"]
        assert rows[1][1:] == ["my-trio", "8", rows[1][3], "40 → 30", "-25.0%"] and rows[1][3].endswith("kB")
        assert rows[0][4] == "-"  # no card, no figures
        assert rows[2][1] == "(cannot play)"
        await pilot.press("down")
        assert "1200 steps" in str(app.screen.query_one("#styles-card", Static).render())
        await pilot.press("down")
        assert "IA3" in str(app.screen.query_one("#styles-card", Static).render())


@async_test
async def test_one_style_picked_plays_it(styles):
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("p")  # nothing picked yet: nothing handed on
        assert app.switched == [] and "pick a style" in str(app.screen.query_one("#styles-message").render())
        await pilot.press("down", "enter", "p")
        assert app.switched == ["mine:1"] and app.dismissed == ["mine:1"]
        assert parse_styles(app.switched[0]) == (("mine", 1.0),)


@async_test
async def test_two_styles_blended_with_weights(styles):
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a", "down", "b")  # bebop, then mine blended in
        await pilot.press("minus", "minus", "minus")  # A: 1 -> 0.7
        await pilot.press(*["right_square_bracket"] * 12)  # B: 1 -> 2, the most
        assert app.screen.chosen == [("bebop", 0.7), ("mine", 2.0)]
        assert "bebop:0.7,mine:2" in str(app.screen.query_one("#styles-blend").render())
        await pilot.press("down", "b")  # a broken style is never blended in
        assert "cannot play" in str(app.screen.query_one("#styles-message").render())
        await pilot.press("p")
        assert app.switched == ["bebop:0.7,mine:2"]
        assert parse_styles(app.switched[0]) == (("bebop", 0.7), ("mine", 2.0))


@async_test
async def test_the_style_playing_is_chosen_and_no_style_is_offered(styles):
    app = Host(current="mine:0.5")
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.screen.chosen == [("mine", 0.5)]
        await pilot.press("n")
        assert app.switched == ["none"] and parse_styles("none") == ()


@async_test
async def test_escape_closes_without_a_choice(styles):
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a", "escape")
        assert app.switched == [] and app.dismissed == [None]


@async_test
async def test_a_style_trained_since_shows_after_a_rescan(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        assert "no styles yet" in str(app.screen.query_one("#styles-message").render())
        from engine.user_dirs import styles_dir

        write_random_adapter(styles_dir() / "fresh", TINY, rank=2, targets=["q_proj"])
        await pilot.press("r")
        assert [r[0] for r in cells(app.screen.query_one(DataTable))] == ["fresh"]


def test_specs_round_trip():
    assert blend_spec([("a", 1.0), ("b", 0.25)]) == "a:1,b:0.25" and blend_spec([]) == "none"
    assert parse_spec("a:1,b:0.25") == [("a", 1.0), ("b", 0.25)]
    assert parse_spec("a") == [("a", 1.0)] and parse_spec("none") == []


def test_read_styles_of_an_empty_or_missing_dir(tmp_path):
    assert read_styles(tmp_path / "nothing") == []


@async_test
async def test_everything_fits_at_80x24(styles):
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a", "down", "b")
        for selector in ("#styles-title", "#styles-table", "#styles-card", "#styles-blend", "FooterKey"):
            for widget in app.screen.query(selector):
                region = widget.region
                assert region.height > 0 and region.right <= 80 and region.bottom <= 24, (selector, region)
