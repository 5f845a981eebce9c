"""Live meters of the MIDI path: messages in and out, drops, send lateness, sounding notes."""
from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class Meters(Widget):
    """Draws the last `ThruStats` it was given (`None`: nothing has run yet)."""

    DEFAULT_CSS = """
    Meters { height: auto; padding: 0 1; }
    """

    stats = reactive(None, layout=True)

    def render(self) -> Text:
        stats = self.stats
        if stats is None:
            return Text("in –   out –   dropped –   sounding –\nsend lateness ms  p50 –   p99 –   max –", style="dim")
        capture, scheduler = stats.capture, stats.scheduler
        dropped = capture.dropped + scheduler.dropped_late
        text = Text()
        text.append(f"in {capture.received:<7} out {scheduler.sent:<7} ")
        text.append(f"dropped {dropped:<5}", style="bold red" if dropped else "")
        text.append(f" sounding {scheduler.sounding}\n")
        text.append(
            f"send lateness ms  p50 {scheduler.lateness_ms_p50:.2f}   "
            f"p99 {scheduler.lateness_ms_p99:.2f}   max {scheduler.lateness_ms_max:.2f}"
        )
        if dropped:
            text.append(f"\ndropped: {capture.dropped} input queue full, {scheduler.dropped_late} too late to play",
                        style="red")
        if scheduler.send_errors:
            text.append(f"\n{scheduler.send_errors} messages lost to a vanished output port", style="red")
        return text
