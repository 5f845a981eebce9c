"""The training screen: pick a corpus (or add a folder of MIDI files to one), name a style, train
it in a child process (`jamtui train --json`) with a progress bar, ETA, tokens/s and a live loss
plot, stop or resume it, then read its figures (base vs style) and play the new style."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Input, Label, ProgressBar, Select, Static

from engine.style.card import read_card
from engine.style.corpus import CorpusError, add_files, list_corpora, open_corpus
from jamtui.screens.help import PANEL_HELP
from jamtui.training_run import (ChildRun, FigureRow, TrainProgress, TrainSettings, card_figures, eval_arguments,
                                 eval_figures, json_line, train_arguments)
from jamtui.widgets.loss_plot import LossPlot

log = logging.getLogger(__name__)
DEFAULT_CORPUS = "mine"  # the corpus `k` (keep take) fills when no style plays
METHODS = (("LoRA", "lora"), ("QLoRA (4-bit base)", "qlora"))


class TrainingScreen(ModalScreen[str | None]):
    """`defaults`: the run's settings before the fields (the fields set corpus, style, method, rank
    and minutes; the rest, e.g. `model` or `steps`, stay as given). `switch_style(name)`: play the
    new style (the `Play` key; absent without it). Dismissed with the name of the style trained in
    it, or None. Closing it stops a run (Resume goes on from its last checkpoint). Posts
    `StyleTrained` (to the app) when a style is ready."""

    class StyleTrained(Message):
        """A run finished: the style `name` is in `path`, ready to play."""

        def __init__(self, name: str, path: Path) -> None:
            super().__init__()
            self.name, self.path = name, path

    class _LineRead(Message):
        def __init__(self, run: ChildRun, text: str) -> None:
            super().__init__()
            self.run, self.text = run, text

    class _ChildExited(Message):
        def __init__(self, run: ChildRun, returncode: int, stderr_tail: list[str]) -> None:
            super().__init__()
            self.run, self.returncode, self.stderr_tail = run, returncode, stderr_tail

    DEFAULT_CSS = """
    TrainingScreen { align: center middle; }
    #training { width: 100%; max-width: 110; height: 100%; padding: 0 1; background: $surface; }
    #training .training-row { height: 1; margin-bottom: 0; }
    #training .training-row Label { width: auto; color: $text-muted; }
    #training .training-row Input { width: 1fr; }
    #train-rank, #train-minutes { max-width: 10; }
    #train-method { width: 22; margin-left: 1; }
    #training .training-row Button { margin-right: 1; min-width: 8; }
    #train-buttons { margin: 1 0 0 0; }
    #train-corpora { color: $text-muted; height: 1; }
    #train-progress { width: auto; }
    #train-figures { width: 1fr; padding-left: 1; }
    #train-loss { height: 1fr; min-height: 4; max-height: 12; }
    #train-eval { height: auto; max-height: 5; }
    #train-message { height: auto; max-height: 7; }
    #train-message.problem { color: $error; }
    """

    BINDINGS = [
        Binding("escape,q", "close", "Close", id="training_close"),
        Binding("ctrl+s", "start(False)", "Start", id="training_start"),
        Binding("ctrl+r", "start(True)", "Resume", id="training_resume"),
        Binding("ctrl+t", "stop", "Stop", id="training_stop"),
        Binding("ctrl+o", "add_folder", "Add folder", id="training_add_folder"),
        Binding("ctrl+y", "play", "Play style", id="training_play"),
        PANEL_HELP,
    ]

    def __init__(self, defaults: TrainSettings | None = None, *,
                 switch_style: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.defaults = defaults or TrainSettings(corpus="", style="")
        self.switch_style = switch_style
        self.progress = TrainProgress()
        self.run: ChildRun | None = None  # the child now running (training or evaluation)
        self.trained: str | None = None  # the style a run finished here
        self.heldout: Path | None = None
        self._eval_lines: list[str] = []

    def compose(self) -> ComposeResult:
        d = self.defaults
        with Vertical(id="training"):
            yield Static("[b]train a style[/b] from a corpus of your playing  ·  esc closes (and stops a run)\n"
                         "[dim]you can keep jamming while a run trains: both go slower[/dim]", id="training-title")
            with Horizontal(classes="training-row"):
                yield Label("corpus ")
                yield Input(d.corpus, placeholder=DEFAULT_CORPUS, id="train-corpus", compact=True)
                yield Label(" add folder ")
                yield Input(placeholder="a folder of .mid files to add", id="train-folder", compact=True)
                yield Button("Add", id="train-add", compact=True)
            yield Static("corpora: …", id="train-corpora")
            with Horizontal(classes="training-row"):
                yield Label("style ")
                yield Input(d.style, placeholder="a new name", id="train-style", compact=True)
                yield Select(METHODS, value=d.method, allow_blank=False, id="train-method", compact=True)
                yield Label(" rank ")
                yield Input("" if d.rank is None else str(d.rank), placeholder="8", type="integer",
                            id="train-rank", compact=True)
                yield Label(" minutes ")
                yield Input("" if d.minutes is None else f"{d.minutes:g}",
                            placeholder=f"{d.steps or 1000} steps", type="number", id="train-minutes", compact=True)
            with Horizontal(classes="training-row"):
                yield Label("held out ")
                yield Input(placeholder="optional: a folder of your playing not in the corpus, for the eval",
                            id="train-heldout", compact=True)
            with Horizontal(classes="training-row", id="train-buttons"):
                yield Button("Start", id="train-start", variant="primary", compact=True)
                yield Button("Resume", id="train-resume", compact=True)
                yield Button("Stop", id="train-stop", disabled=True, compact=True)
                yield Button("Play style", id="train-play", disabled=True, compact=True)
            with Horizontal(classes="training-row"):
                yield ProgressBar(total=100, show_eta=False, show_percentage=False, id="train-progress")
                yield Static("", id="train-figures")
            yield LossPlot(id="train-loss")
            yield DataTable(id="train-eval", cursor_type="none", show_cursor=False)
            yield Static("", id="train-message")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#train-eval", DataTable)
        table.add_columns("figure", "base", "style", "change")
        table.display = False
        self.list_corpora()
        self.query_one("#train-corpus" if not self.defaults.corpus else "#train-style", Input).focus()

    def on_unmount(self) -> None:
        if self.run is not None:  # a run never outlives the screen that shows it
            self.run.cancel()

    # -- workers (files and folders, off the UI thread) -------------------------------------

    @work(thread=True, exclusive=True, group="corpora")
    def list_corpora(self) -> None:
        self.app.call_from_thread(self._corpora_listed, *_corpora())

    @work(thread=True, exclusive=True, group="corpora")
    def _add_folder(self, corpus: str, folder: Path) -> None:
        try:
            result = add_files(corpus, [folder])
        except CorpusError as exc:
            self.app.call_from_thread(self._corpus_added, str(exc), True)
            return
        reasons = "; ".join(f"{p.name}: {why}" for p, why in result.skipped[:3])
        if not result.added:
            self.app.call_from_thread(self._corpus_added, f"corpus {corpus}: nothing added from {folder}"
                                      + (f" ({reasons})" if reasons else ""), True)
        else:
            self.app.call_from_thread(self._corpus_added, f"corpus {corpus}: added {len(result.added)} files, "
                                      f"skipped {len(result.skipped)}", False)
        self.app.call_from_thread(self._corpora_listed, *_corpora())

    # -- actions -----------------------------------------------------------------------------

    def action_close(self) -> None:
        self.dismiss(self.trained)

    def action_add_folder(self) -> None:
        corpus = self._value("train-corpus") or DEFAULT_CORPUS
        folder = self._value("train-folder")
        if not folder:
            self._say("type the folder to add, then ctrl+o (or Add)", problem=True)
            self.query_one("#train-folder", Input).focus()
            return
        path = Path(folder).expanduser()
        if not path.is_dir():
            self._say(f"{path}: no such folder", problem=True)
            return
        self._say(f"adding {path} to corpus {corpus}…")
        self._add_folder(corpus, path)

    def action_start(self, resume: bool) -> None:
        if self.run is not None and self.run.running:
            self._say("a run is going on: ctrl+t stops it", problem=True)
            return
        try:
            settings = self._settings(resume)
        except ValueError as exc:
            self._say(str(exc), problem=True)
            return
        self.trained, self.progress = None, TrainProgress()
        heldout = self._value("train-heldout")
        self.heldout = Path(heldout).expanduser() if heldout else None
        self.query_one("#train-eval", DataTable).display = False
        self.query_one("#train-play", Button).disabled = True
        self._draw_progress()
        verb = "resuming" if resume else "training"
        self._start_child(train_arguments(settings), f"{verb} style {settings.style} on corpus {settings.corpus}…")

    def action_stop(self) -> None:
        if self.run is None or not self.run.running:
            self._say("nothing is running")
            return
        self.run.cancel()
        self._say("stopping…")

    def action_play(self) -> None:
        if self.trained is None or self.switch_style is None:
            self._say("no style trained here yet" if self.switch_style else "playing a style is not offered here")
            return
        self.switch_style(self.trained)
        self.dismiss(self.trained)

    def _settings(self, resume: bool) -> TrainSettings:
        corpus = self._value("train-corpus") or DEFAULT_CORPUS
        style = self._value("train-style")
        if not style:
            raise ValueError("name the style to train (letters, digits, '-', '_', '.')")
        rank_text, minutes_text = self._value("train-rank"), self._value("train-minutes")
        try:
            rank = int(rank_text) if rank_text else self.defaults.rank
        except ValueError:
            raise ValueError(f"rank: {rank_text!r} is not a whole number") from None
        if rank is not None and rank < 1:
            raise ValueError("rank: 1 or more")
        try:
            minutes = float(minutes_text) if minutes_text else self.defaults.minutes
        except ValueError:
            raise ValueError(f"minutes: {minutes_text!r} is not a number") from None
        if minutes is not None and minutes <= 0:
            raise ValueError("minutes: above 0 (empty: a number of steps)")
        method = self.query_one("#train-method", Select).value
        return replace(self.defaults, corpus=corpus, style=style, method=str(method), rank=rank, minutes=minutes,
                       steps=None if minutes is not None else self.defaults.steps, resume=resume)

    def _start_child(self, args: list[str], saying: str) -> None:
        run: ChildRun | None = None

        def line_read(text: str) -> None:  # on the child's reader thread: only post
            self.post_message(self._LineRead(run, text))

        def exited(returncode: int, stderr_tail: list[str]) -> None:
            self.post_message(self._ChildExited(run, returncode, stderr_tail))

        run = ChildRun(args, on_line=line_read, on_exit=exited)
        try:
            run.start()
        except OSError as exc:
            self._say(f"could not start jamtui {args[0]}: {exc}", problem=True)
            return
        self.run = run
        self._eval_lines = []
        self._buttons(running=True)
        self._say(saying)

    # -- what the children say ----------------------------------------------------------------

    @on(_LineRead)
    def _line_read(self, message: _LineRead) -> None:
        if message.run is not self.run:
            return
        if message.run.command == "eval":
            self._eval_lines.append(message.text)
            return
        line = json_line(message.text)
        if line is not None and self.progress.read(line):
            self._draw_progress()

    @on(_ChildExited)
    def _child_exited(self, message: _ChildExited) -> None:
        run = message.run
        if run is not self.run:
            return
        self.run = None
        self._buttons(running=False)
        if run.command == "eval":
            self._eval_done(message)
            return
        result = self.progress.result
        if message.returncode == 0 and result is not None:
            self._trained(result)
        elif run.cancelled:
            self._say("stopped; Resume (ctrl+r) trains on from the last checkpoint")
        else:
            tail = "\n".join(message.stderr_tail[-6:]) or "(it said nothing)"
            self._say(f"training failed (exit {message.returncode}):\n{tail}", problem=True)

    def _trained(self, result: dict[str, Any]) -> None:
        name, path = str(result["style"]), Path(result["path"])
        self.trained = name
        self._draw_progress()
        self._card_figures(path)
        self.query_one("#train-play", Button).disabled = self.switch_style is None
        self.post_message(self.StyleTrained(name, path))
        if result["stopped_because"] == "stopped":
            done = f"stopped at step {result['steps']}: style {name} is its best so far; Resume (ctrl+r) trains on"
        else:
            done = f"style {name} trained: {result['steps']} steps ({result['stopped_because']})"
        done += "; ctrl+y plays it" if self.switch_style else ""
        if self.heldout is not None:
            self._start_child(eval_arguments(name, [self.heldout]), done + "; evaluating on the held-out files…")
        else:
            self._say(done)

    def _card_figures(self, style_dir: Path) -> None:
        try:
            card = read_card(style_dir) or {}
        except (OSError, ValueError) as exc:
            self._say(f"{style_dir}: unreadable card: {exc}", problem=True)
            return
        self._figures(card_figures(card))

    def _eval_done(self, message: _ChildExited) -> None:
        try:
            result = json.loads("\n".join(self._eval_lines)) if message.returncode == 0 else None
        except json.JSONDecodeError:
            result = None
        if not isinstance(result, dict):
            tail = "\n".join(message.stderr_tail[-4:]) or "(no figures)"
            self._say(f"style {self.trained} trained; the held-out eval failed (exit {message.returncode}):\n{tail}",
                      problem=True)
            return
        self._figures(eval_figures(result), keep=True)
        self._say(f"style {self.trained}: base against style on the held-out files above"
                  + ("; ctrl+y plays it" if self.switch_style else ""))

    # -- drawing -----------------------------------------------------------------------------

    def _figures(self, rows: list[FigureRow], keep: bool = False) -> None:
        table = self.query_one("#train-eval", DataTable)
        if not keep:
            table.clear()
        for label, base, style in rows:
            change = f"{style / base - 1:+.1%}" if base and style is not None else "-"
            table.add_row(label, _shown(base), _shown(style), change)
        table.display = True

    def _draw_progress(self) -> None:
        p = self.progress
        fraction = p.fraction
        bar = self.query_one("#train-progress", ProgressBar)
        bar.update(total=100 if fraction is not None else None, progress=round(100 * (fraction or 0), 1))
        done = f"{fraction:.0%}" if fraction is not None else ""
        steps = f"step {p.step}" + (f"/{p.total}" if p.total else "")
        rate = f"{p.tokens_per_s:,.0f} tokens/s" if p.tokens_per_s is not None else "- tokens/s"
        eta = f"ETA {_clock(p.eta_s)}" if p.eta_s is not None and p.result is None else ""
        forgetting = f"forgetting {p.forgetting:+.1%}" if p.forgetting is not None else ""
        self.query_one("#train-figures", Static).update(
            Text("  ".join(x for x in (done, steps, rate, eta, forgetting) if x)))
        self.query_one(LossPlot).show(p.train_loss, p.val_loss)

    def _buttons(self, *, running: bool) -> None:
        self.query_one("#train-start", Button).disabled = running
        self.query_one("#train-resume", Button).disabled = running
        self.query_one("#train-stop", Button).disabled = not running

    def _say(self, text: str, problem: bool = False) -> None:
        line = self.query_one("#train-message", Static)
        line.update(Text(text))  # a child's error may hold brackets: never markup
        line.set_class(problem, "problem")
        (log.warning if problem else log.info)("%s", text)

    def _value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value.strip()

    # -- buttons and fields --------------------------------------------------------------------

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        actions = {"train-add": self.action_add_folder, "train-start": lambda: self.action_start(False),
                   "train-resume": lambda: self.action_start(True), "train-stop": self.action_stop,
                   "train-play": self.action_play}
        actions[event.button.id or ""]()

    @on(Input.Submitted, "#train-folder")
    def _folder_submitted(self) -> None:
        self.action_add_folder()

    def _corpus_added(self, text: str, problem: bool) -> None:
        self._say(text, problem=problem)
        if not problem:
            self.query_one("#train-folder", Input).value = ""

    def _corpora_listed(self, names: list[str], text: str) -> None:
        self.query_one("#train-corpora", Static).update(Text(text))
        corpus = self.query_one("#train-corpus", Input)
        if not corpus.value and names:
            corpus.value = names[0]


def _corpora() -> tuple[list[str], str]:
    """The corpora's names, and a line saying what each holds."""
    names, parts = list_corpora(), []
    for name in names:
        try:
            summary = open_corpus(name).summary()
            parts.append(f"{name} ({summary['n_files']} files, {summary['hours']:.2f} h)")
        except CorpusError as exc:
            parts.append(f"{name} (broken: {exc})")
    return names, "corpora: " + (" · ".join(parts) if parts else "none yet: add a folder of your playing")


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"
