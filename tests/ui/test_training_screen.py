"""The training screen: a corpus added from a folder, a real (tiny) `jamtui train --json` run in a
child process drawn as it goes, its figures and the style offered; a failing run shows its error
and the console stays up; the loss plot and the progress read from JSON lines."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import DataTable, Input, Static

from engine.model.adapters import find_style
from engine.style.settings import STYLE_LOOP
from jamtui.screens.training import TrainingScreen
from jamtui.training_run import TrainProgress, TrainSettings, train_arguments
from jamtui.widgets.loss_plot import TRAIN_GLYPH, VAL_GLYPH, loss_chart
from tests.engine.style_helpers import write_riff
from tests.ui.rig import async_test, wait_for


class Host(App):
    """A bare app showing the training screen, keeping what it says back."""

    def __init__(self, defaults: TrainSettings) -> None:
        super().__init__()
        self.defaults = defaults
        self.trained: list[tuple[str, Path]] = []
        self.played: list[str] = []
        self.dismissed: list[str | None] = []

    def on_mount(self) -> None:
        self.push_screen(TrainingScreen(self.defaults, switch_style=self.played.append), self.dismissed.append)

    def on_training_screen_style_trained(self, message: TrainingScreen.StyleTrained) -> None:
        self.trained.append((message.name, message.path))


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))  # the children inherit it
    return home


def tiny_settings(base: Path) -> TrainSettings:
    """A run of a few seconds on two cores: the tiny base, short windows, no replay."""
    return TrainSettings(corpus="", style="", model=base, steps=4, batch=2, seq_len=64, replay=0.0, copies=1,
                         threads=1, device="cpu")


def screen_text(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def assert_fits(screen) -> None:
    """Every field, button and figure in sight at 80x24, the plot with room to be read."""
    for selector in ("Input", "Select", "Button", "#train-progress", "#train-figures", "#train-loss",
                     "#train-message", "FooterKey") + (("#train-eval",) if screen.query_one("#train-eval").display
                                                       else ()):
        for widget in screen.query(selector):
            region = widget.region
            assert region.height > 0 and region.right <= 80 and region.bottom <= 24, (selector, region)
    assert screen.query_one("#train-loss").region.height >= 4


async def type_into(pilot, selector: str, text: str) -> None:
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    field.value = ""
    await pilot.press(*text)


@async_test
async def test_a_corpus_added_trains_a_style_drawn_as_it_goes(data_home, tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no pre-training corpus here: the eval skips measuring forgetting
    folder = tmp_path / "playing"
    folder.mkdir()
    for i in range(4):
        write_riff(folder / f"take{i}.mid", shift=i, seconds=12.0)
    heldout = write_riff(tmp_path / "heldout.mid", shift=7, seconds=12.0)
    app = Host(tiny_settings(tiny_checkpoint))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainingScreen)
        await type_into(pilot, "#train-corpus", "takes")
        await type_into(pilot, "#train-folder", str(folder))
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: "takes (4 files" in screen_text(screen, "#train-corpora"))

        await type_into(pilot, "#train-heldout", str(heldout))
        await type_into(pilot, "#train-style", "my-scales")
        await pilot.press("s")  # typed into the field: no hotkey fires
        assert screen.query_one("#train-style", Input).value == "my-scaless"
        await pilot.press("backspace", "ctrl+s")
        await wait_for(pilot, lambda: screen.run is not None and screen.run.running, 10)
        await wait_for(pilot, lambda: screen.progress.step >= 1, 40)
        # The screen posts StyleTrained as it marks the style trained; the app hears it a moment later.
        await wait_for(pilot, lambda: screen.trained == "my-scales" and app.trained, 40)

        progress = screen.progress
        assert progress.step == 4 and progress.total == 4
        assert [s for s, _ in progress.train_loss] == [1, 2, 3, 4]
        assert [s for s, _ in progress.val_loss] == [0, 4]  # the base's, then the style's
        assert progress.tokens_per_s and progress.tokens_per_s > 0
        assert "step 4/4" in screen_text(screen, "#train-figures")
        assert "tokens/s" in screen_text(screen, "#train-figures")
        table = screen.query_one("#train-eval", DataTable)
        assert table.display and table.row_count == 2  # the card's figures, while the eval runs
        assert table.get_row_at(0)[0] == "validation bits/s" and table.get_row_at(0)[1] != "-"
        assert find_style("my-scales") is not None
        assert app.trained == [("my-scales", find_style("my-scales"))]

        await wait_for(pilot, lambda: screen.run is None, 40)  # `jamtui eval` on the held-out file
        assert "held-out files" in screen_text(screen, "#train-message"), screen_text(screen, "#train-message")
        held_out = table.get_row_at(2)
        assert held_out[0] == "held-out bits/s" and held_out[1] != "-" and held_out[2] != "-"
        await pilot.pause()
        assert_fits(screen)

        await pilot.press("ctrl+y")  # the new style offered: played, and the screen closes
        await pilot.pause()
        assert app.played == ["my-scales"] and app.dismissed == ["my-scales"]


@async_test
async def test_a_failed_run_shows_its_error_and_the_console_stays(data_home, tiny_checkpoint):
    app = Host(tiny_settings(tiny_checkpoint))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await type_into(pilot, "#train-corpus", "nowhere")
        await type_into(pilot, "#train-style", "lost")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.run is None and "failed" in screen_text(screen, "#train-message"), 30)
        message = screen_text(screen, "#train-message")
        assert "exit 2" in message and "nowhere" in message  # the child's one-line error
        assert screen.query_one("#train-message").has_class("problem")
        assert_fits(screen)
        assert app.is_running and app.screen is screen and screen.trained is None
        assert app.trained == []
        await pilot.press("escape")
        assert app.dismissed == [None]


@async_test
async def test_stop_keeps_the_style_so_far_and_resume_trains_on_from_where_it_stopped(data_home, tmp_path,
                                                                                    tiny_checkpoint):
    folder = tmp_path / "playing"
    folder.mkdir()
    for i in range(3):
        write_riff(folder / f"take{i}.mid", shift=i, seconds=12.0)
    from engine.style.corpus import add_files

    add_files("takes", [folder])
    settings = replace(tiny_settings(tiny_checkpoint), corpus="takes", steps=100_000)
    app = Host(settings)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await type_into(pilot, "#train-style", "endless")
        await pilot.press("ctrl+s")
        # Past the first checkpoint (the run saves one at each evaluation, every 50 steps).
        await wait_for(pilot, lambda: screen.progress.step >= STYLE_LOOP.eval_every + 2, 40)
        child = screen.run
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: screen.run is None, 20)
        assert child.wait(0) and child.cancelled
        stopped_at = screen.progress.step
        assert screen.progress.result["stopped_because"] == "stopped"  # it saved, it was not killed
        assert "Resume" in screen_text(screen, "#train-message") and screen.trained == "endless"
        assert (data_home / "jamtui" / "styles" / "endless" / "adapter_model.safetensors").is_file()
        assert not screen.query_one("#train-resume").disabled

        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: screen.progress.train_loss, 40)
        assert "--resume" in screen.run.args
        resumed_from = screen.progress.train_loss[0][0] - 1
        assert resumed_from == stopped_at  # not a step lost
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: screen.run is None, 20)


def test_train_arguments_name_each_setting():
    settings = TrainSettings(corpus="mine", style="late", method="qlora", rank=4, minutes=2.5, resume=True)
    assert train_arguments(settings) == ["train", "--corpus", "mine", "--name", "late", "--method", "qlora", "--json",
                                         "--rank", "4", "--minutes", "2.5", "--resume"]


def test_progress_reads_the_train_lines_and_the_end():
    progress = TrainProgress()
    assert progress.fraction is None
    assert progress.read({"event": "train", "step": 0, "loss": None, "val_loss": 6.0, "tokens_per_s": None,
                          "eta_s": None})
    assert not progress.read({"event": "replay", "step": 3, "total": 64})
    assert progress.read({"event": "train", "step": 5, "total": 20, "loss": 5.5, "val_loss": None,
                          "tokens_per_s": 900.0, "eta_s": 12.0, "elapsed_s": 4.0})
    assert (progress.step, progress.total, progress.fraction) == (5, 20, 0.25)
    assert progress.train_loss == [(5, 5.5)] and progress.val_loss == [(0, 6.0)]
    assert progress.forgetting is None
    progress.read({"event": "train", "step": 10, "loss": 5.0, "val_loss": 5.2, "forgetting": 0.013,
                   "tokens_per_s": 900.0, "eta_s": 6.0})
    progress.read({"event": "train", "step": 11, "loss": 5.0, "val_loss": None, "forgetting": None,
                   "tokens_per_s": 900.0, "eta_s": 5.0})
    assert progress.forgetting == 0.013  # the last evaluation's, kept between evaluations
    progress.read({"event": "train-done", "style": "x", "path": "/x", "steps": 5})
    assert progress.fraction == 1.0


def test_the_loss_chart_puts_high_losses_on_top_in_its_size():
    lines = loss_chart([(1, 6.0), (10, 4.0)], [(0, 6.5), (10, 4.5)], width=40, height=5)
    assert len(lines) == 5 and all(len(line.plain) == 40 for line in lines)
    assert lines[0].plain.startswith(" 6.500┤") and VAL_GLYPH in lines[0].plain
    assert lines[-1].plain.startswith(" 4.000┤") and TRAIN_GLYPH in lines[-1].plain
    assert loss_chart([], [], 40, 5)[0].plain == "loss: no figures yet"

