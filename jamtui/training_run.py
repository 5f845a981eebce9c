"""A style's training (`jamtui train --json`) and its held-out evaluation (`jamtui eval --json`) as
child processes of the console: the command lines, one line of stdout at a time read on a thread,
the last lines of stderr kept for the error, and a clean cancel (Ctrl-C, as at a terminal)."""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STDERR_LINES_KEPT = 12  # what a failed run shows of its child's last words
# After Ctrl-C, how long the child may take to stop before it is killed: a training run finishes its
# step, saves a checkpoint and measures the style it keeps on its validation files (seconds, or tens of
# seconds for a long corpus on a slow CPU).
CANCEL_GRACE_S = 60.0


@dataclass(frozen=True)
class TrainSettings:
    """What `jamtui train` is run with; None leaves a flag out (the command's default). `minutes`
    and `steps` exclude each other, as on the command line."""

    corpus: str
    style: str
    method: str = "lora"  # "lora" or "qlora"
    rank: int | None = None
    minutes: float | None = None
    steps: int | None = None
    resume: bool = False
    model: Path | None = None  # the base checkpoint (default: the shipped model)
    batch: int | None = None
    seq_len: int | None = None
    replay: float | None = None
    copies: int | None = None
    threads: int | None = None
    device: str | None = None


def train_arguments(settings: TrainSettings) -> list[str]:
    """The `jamtui train ... --json` arguments of `settings` (after `python -m jamtui`)."""
    args = ["train", "--corpus", settings.corpus, "--name", settings.style, "--method", settings.method, "--json"]
    flags = {"--rank": settings.rank, "--minutes": settings.minutes, "--steps": settings.steps,
             "--model": settings.model, "--batch": settings.batch, "--seq-len": settings.seq_len,
             "--replay": settings.replay, "--copies": settings.copies, "--threads": settings.threads,
             "--device": settings.device}
    for flag, value in flags.items():
        if value is not None:
            args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if settings.resume:
        args.append("--resume")
    return args


def eval_arguments(style: str, heldout: Sequence[Path]) -> list[str]:
    """The `jamtui eval ... --json` arguments: the style against its base on `heldout` files or folders."""
    return ["eval", "--style", style, "--heldout", *(str(p) for p in heldout), "--json"]


OnLine = Callable[[str], None]
OnExit = Callable[[int, list[str]], None]


class ChildRun:
    """`python -m jamtui ARGS` in a child process. `on_line(text)` gets each stdout line and
    `on_exit(returncode, last stderr lines)` the end, both on this object's reader thread (never
    the caller's); `cancel()` (any thread) sends Ctrl-C, then kills the child if it lingers."""

    def __init__(self, args: Sequence[str], *, on_line: OnLine, on_exit: OnExit) -> None:
        self.args = [sys.executable, "-m", "jamtui", *args]
        self.on_line, self.on_exit = on_line, on_exit
        self.cancelled = False
        self._process: subprocess.Popen[str] | None = None
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        self._done = threading.Event()
        self._stderr_reader: threading.Thread | None = None

    @property
    def command(self) -> str:
        """The jamtui subcommand run: "train", "eval"."""
        return self.args[3]

    @property
    def running(self) -> bool:
        return self._process is not None and not self._done.is_set()

    def start(self) -> None:
        """Start the child and its readers; OSError when it cannot start (then nothing runs)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                                         env=env, start_new_session=True)  # the console's Ctrl-C is not its
        self._stderr_reader = threading.Thread(target=self._read_stderr, name="child-stderr", daemon=True)
        self._stderr_reader.start()
        threading.Thread(target=self._read_stdout, name="child-stdout", daemon=True).start()

    def cancel(self, grace_s: float = CANCEL_GRACE_S) -> None:
        """Ctrl-C to the child (it saves what it can and exits), then a kill after `grace_s`."""
        process = self._process
        if process is None or self._done.is_set():
            return
        self.cancelled = True
        try:
            process.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
        except ProcessLookupError:
            return
        threading.Thread(target=self._kill_after, args=(process, grace_s), name="child-cancel", daemon=True).start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once the child has ended and `on_exit` has been called."""
        return self._done.wait(timeout_s)

    def _kill_after(self, process: subprocess.Popen[str], grace_s: float) -> None:
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            log.warning("the child %s did not stop %g s after Ctrl-C; killing it", self.args[3:5], grace_s)
            process.kill()

    def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            # tqdm-style redraws come as carriage returns inside one line: keep the last state.
            text = line.rstrip("\n").rsplit("\r", 1)[-1].rstrip()
            if text:
                self._stderr.append(text)

    def _read_stdout(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        try:
            for line in process.stdout:
                try:
                    self.on_line(line.rstrip("\n"))
                except Exception:  # noqa: BLE001 - a bad handler must not leave the pipe unread
                    log.exception("reading the child's output")
        finally:
            returncode = process.wait()
            if self._stderr_reader is not None:  # its last lines are the error a failed run shows
                self._stderr_reader.join(2.0)
            try:
                self.on_exit(returncode, list(self._stderr))
            finally:
                self._done.set()


def json_line(text: str) -> dict[str, Any] | None:
    """The JSON object on a line of the child's stdout, or None for anything else (a stray print)."""
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class TrainProgress:
    """What the console draws of a training run, read from the child's JSON lines (the `train`
    lines of `engine.style.train`, the closing `train-done` line of `jamtui train`)."""

    def __init__(self) -> None:
        self.step = 0
        self.total: int | None = None  # None: a run limited by minutes
        self.train_loss: list[tuple[int, float]] = []  # (step, mean NLL per token)
        self.val_loss: list[tuple[int, float]] = []
        self.tokens_per_s: float | None = None
        self.eta_s: float | None = None
        self.elapsed_s: float | None = None
        self.forgetting: float | None = None  # at the last evaluation: the base's loss raised by this share
        self.result: dict[str, Any] | None = None  # the train-done line

    def read(self, line: dict[str, Any]) -> bool:
        """Take one JSON line in; True when it was the run's (a step or its end)."""
        event = line.get("event")
        if event == "train-done":
            self.result = line
            return True
        if event != "train" or not isinstance(line.get("step"), int):
            return False  # replay sampling and other stages: not the training's progress
        self.step = line["step"]
        if isinstance(line.get("total"), int):
            self.total = line["total"]
        for series, key in ((self.train_loss, "loss"), (self.val_loss, "val_loss")):
            if _number(line.get(key)):
                series.append((self.step, float(line[key])))
        for key in ("tokens_per_s", "eta_s", "elapsed_s", "forgetting"):
            if _number(line.get(key)):
                setattr(self, key, float(line[key]))
        return True

    @property
    def fraction(self) -> float | None:
        """How far along, 0 to 1: by steps, or by time in a run limited by minutes; None before a figure."""
        if self.result is not None:
            return 1.0
        if self.total:
            return min(1.0, self.step / self.total)
        if self.elapsed_s is not None and self.eta_s is not None and self.elapsed_s + self.eta_s > 0:
            return self.elapsed_s / (self.elapsed_s + self.eta_s)
        return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


FigureRow = tuple[str, float | None, float | None]  # what, the base's, the style's


def card_figures(card: dict[str, Any]) -> list[FigureRow]:
    """Base against style on the corpus's validation files, from a style's card."""
    fit = card.get("validation") if isinstance(card.get("validation"), dict) else {}
    base = fit.get("base") if isinstance(fit.get("base"), dict) else {}
    style = fit.get("style") if isinstance(fit.get("style"), dict) else {}
    return [("validation bits/s", _figure(base, "bits_per_s"), _figure(style, "bits_per_s")),
            ("validation NLL/token", _figure(base, "nll_per_token"), _figure(style, "nll_per_token"))]


def eval_figures(result: dict[str, Any]) -> list[FigureRow]:
    """Base against style from `jamtui eval --json`: on the held-out files, the mean overlap of
    the continuations with the real playing and, when measured, the pre-training corpus (forgetting)."""
    overlap = result.get("overlap") if isinstance(result.get("overlap"), dict) else {}
    rows = [("held-out bits/s", _figure(result, "base_bits_per_s"), _figure(result, "style_bits_per_s")),
            ("overlap (mean)", *(_figure(overlap.get(who) or {}, "oa_mean") for who in ("base", "style")))]
    forgetting = result.get("base_val_bits_per_s")
    if isinstance(forgetting, dict):
        rows.append(("base corpus bits/s", _figure(forgetting, "base"), _figure(forgetting, "style")))
    return rows


def _figure(table: dict[str, Any], key: str) -> float | None:
    value = table.get(key)
    return float(value) if _number(value) else None
