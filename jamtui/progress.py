"""Progress bars for the long offline commands: drawn on stderr when it is a terminal, silent in a
pipe or with --json (the engine only calls `on_progress(done, total)`)."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

Progress = Callable[[float, float], None]


@contextmanager
def progress_bar(label: str, unit: str = "s of music", *, quiet: bool = False) -> Iterator[Progress | None]:
    """Yields `on_progress(done, total)` drawing a transient bar on stderr, or None when `quiet` or
    stderr is not a terminal (so nothing is drawn into a log or a pipe)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bars

    with Bars(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[done]}"), TimeElapsedColumn(),
              TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bars:
        task = bars.add_task(label, total=None, done="")

        def on_progress(done: float, total: float) -> None:
            bars.update(task, completed=done, total=total, done=f"{done:.0f}/{total:.0f} {unit}")

        yield on_progress
