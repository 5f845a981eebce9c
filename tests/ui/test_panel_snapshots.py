"""Snapshots of the three panels, presets, styles and training, each hosted alone at 80x24 and at
120x40, over files in tmp dirs (nothing on screen names one)."""
from __future__ import annotations

import importlib.util
import json

import pytest
from textual.app import App
from textual.screen import Screen

from engine.model.adapters import write_random_adapter
from engine.presets.files import load_preset
from jamtui.screens.presets import PresetsScreen
from jamtui.screens.styles import StylesScreen
from jamtui.screens.training import TrainingScreen
from jamtui.training_run import TrainSettings
from tests.engine.models import TINY
from tests.ui.rig import wait_for

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pytest_textual_snapshot") is None,
                                reason="needs pytest-textual-snapshot")

SIZES = [(80, 24), (120, 40)]
CARD = {"style": "mine", "method": "lora", "corpus": {"name": "my-trio", "hours": 1.5},
        "run": {"steps": 1200, "best_step": 1100, "stopped_because": "max steps", "device": "cpu"},
        "validation": {"base": {"bits_per_s": 40.0}, "style": {"bits_per_s": 30.0}}}


class Host(App):
    """A bare app showing one panel."""

    def __init__(self, panel: Screen) -> None:
        super().__init__()
        self.panel = panel

    def on_mount(self) -> None:
        self.push_screen(self.panel)


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """Styles and corpora in a tmp dir, empty until a test writes there."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_presets_panel(snap_compare, tmp_path, data_home, size):
    user_dir = tmp_path / "presets"  # none of yours yet: the shipped ones
    screen = PresetsScreen(load_preset("default", user_dir=user_dir), apply_preset=lambda preset: None,
                           user_dir=user_dir)

    async def nudged(pilot) -> None:
        await pilot.press("down")  # highlights imitate, below the one playing: its description shown
        screen.query_one("#presets-settings").focus()
        await pilot.press("down", "plus")  # temperature 0.95 -> 1.00: changed, unsaved
        await wait_for(pilot, lambda: "unsaved" in str(screen.query_one("#presets-live").render()))

    assert snap_compare(Host(screen), terminal_size=size, run_before=nudged)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_styles_panel(snap_compare, data_home, size):
    from engine.user_dirs import styles_dir

    mine = write_random_adapter(styles_dir() / "mine", TINY, rank=8, targets=["q_proj", "v_proj"])
    (mine / "card.json").write_text(json.dumps(CARD))
    write_random_adapter(styles_dir() / "bebop", TINY, rank=4, targets=["up_proj"])
    screen = StylesScreen("", switch_style=lambda spec: None)

    async def blended(pilot) -> None:
        await pilot.press("a", "down", "b", "minus", "minus")  # bebop x 0.8 + mine x 1: the longest line
        assert screen.chosen == [("bebop", 0.8), ("mine", 1.0)]

    assert snap_compare(Host(screen), terminal_size=size, run_before=blended)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_training_screen(snap_compare, data_home, size):
    screen = TrainingScreen(TrainSettings(corpus="", style="", steps=600), switch_style=lambda name: None)

    async def listed(pilot) -> None:
        await wait_for(pilot, lambda: "none yet" in str(screen.query_one("#train-corpora").render()))

    assert snap_compare(Host(screen), terminal_size=size, run_before=listed)
