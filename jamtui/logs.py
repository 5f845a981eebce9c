"""Log records on the way to the UI: a handler that posts them as messages, and the switch that
routes the root logger there while the console owns the terminal."""
from __future__ import annotations

import logging
import sys

from jamtui.messages import LogRecorded


class UILogHandler(logging.Handler):
    """Posts every log record to `target` as `LogRecorded`, from whichever thread logged it.

    Not `call_from_thread`: it waits for the app, which may itself be joining the engine
    thread that is logging, and it refuses to run on the app thread.
    """

    def __init__(self, target) -> None:
        super().__init__()
        self.target = target
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.target.post_message(LogRecorded(record, self.format(record)))
        except Exception:  # noqa: BLE001 - logging must never raise into the engine
            self.handleError(record)


class LogCapture:
    """Routes root-logger records to the UI while it owns the terminal, and back afterwards."""

    def __init__(self, target, level: int = logging.INFO) -> None:
        self.handler = UILogHandler(target)
        self.level = level
        self._muted: list[logging.Handler] = []
        self._saved_level: int | None = None

    def install(self) -> None:
        root = logging.getLogger()
        # A handler writing to the terminal would draw over the UI.
        terminal = {sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__}
        self._muted = [h for h in root.handlers if getattr(h, "stream", None) in terminal]
        for handler in self._muted:
            root.removeHandler(handler)
        root.addHandler(self.handler)
        if root.level > self.level:
            self._saved_level = root.level
            root.setLevel(self.level)

    def uninstall(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        for handler in self._muted:
            root.addHandler(handler)
        self._muted = []
        if self._saved_level is not None:
            root.setLevel(self._saved_level)
            self._saved_level = None
