"""The log panel: the session's events (phrases, yields, mode and preset changes, panic,
failures) between the log records of the engine and the app."""
from __future__ import annotations

import logging
import time

from rich.text import Text
from textual.widgets import RichLog


def describe(event) -> tuple[str, str]:
    """(words, style) for an `engine.duet.session.SessionEvent`."""
    d = event.detail
    kind = event.kind
    if kind == "ai_phrase_started":
        return (f"AI answers until {d['until_s']:.1f} s" if "until_s" in d else "AI answers"), "cyan"
    if kind == "ai_phrase_ended":
        return "AI phrase ended; your turn", "cyan"
    if kind == "ai_yielded":
        return ("AI gave way before it played" if d.get("before_entry") else "AI yielded to you"), "cyan"
    if kind == "mode_changed":
        return f"mode {d.get('previous', '?')} → {d.get('mode', '?')}", "bold cyan"
    if kind == "preset_changed":
        return f"preset → {d.get('name', '?')}", "bold cyan"
    if kind == "panicked":
        return "PANIC: all notes off", "bold yellow"
    if kind == "generation_failed":
        return f"generation failed: {d.get('error', '?')}", "red"
    if kind == "failed":
        return "session failed; stopping in silence", "bold red"
    extra = " ".join(f"{k}={v}" for k, v in d.items())
    return f"{kind} {extra}".strip(), ""


class EventLog(RichLog):
    def __init__(self, **kwargs) -> None:
        super().__init__(wrap=True, markup=False, max_lines=2000, min_width=20, **kwargs)

    def write_record(self, record: logging.LogRecord, text: str) -> None:
        level = record.levelno
        self.write(Text(text, style="red" if level >= logging.ERROR else "yellow" if level >= logging.WARNING else ""))

    def write_note(self, words: str, style: str = "") -> None:
        """A line of the console's own: a jam started or stopped, what a notification said."""
        line = Text(time.strftime("%H:%M:%S "), style="dim")
        line.append(words, style=style)
        self.write(line)

    def write_event(self, event) -> None:
        words, style = describe(event)
        line = Text(time.strftime("%H:%M:%S "), style="dim")
        line.append(f"{event.t_s:7.2f} s  ", style="dim")
        line.append(words, style=style)
        self.write(line)
