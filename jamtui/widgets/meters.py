"""Live meters of the jam: who is playing, notes in and out, response latency, real-time factor,
lead, echo rate, drops and errors, a short history of latency, real-time factor and lead, and a
warning in the border when the machine falls behind."""
from __future__ import annotations

import collections
import math
import time

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from jamtui.widgets.sparkline import History

_RATE_WINDOW_S = 2.0  # notes per second are counted over this much recent time
_ACTIVE_S = 0.5  # a player's light stays on this long after their last note
HISTORY_EVERY_S = 0.5  # one reading into the sparklines this often: 8 columns show 4 s, 40 show 20 s
BEHIND_RTF = 1.5  # generating less than this many seconds of music per second of compute is near the edge
BEHIND_WINDOW_S = 5.0  # late or dropped notes in the last this-many seconds: the machine fell behind
TITLE = "meters"


class Meters(Widget):
    """Draws the last `SessionMetrics` (and output `SchedulerStats`) it was given; None: no jam yet.
    After `stopped` the last jam's figures stay, dimmed and with the lights off, until `started`."""

    DEFAULT_CSS = """
    Meters { height: auto; padding: 0 1; }
    """

    metrics = reactive(None)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.output = None
        self._history: collections.deque[tuple[float, int, int]] = collections.deque()
        self._last_note_s = {"in": -math.inf, "out": -math.inf}
        self._now_s = 0.0
        self.running = False
        self.latency, self.rtf, self.lead = History(), History(), History()
        self._sampled_s = -math.inf  # when the sparklines took their last reading
        self._late = collections.deque()  # (now_s, late + dropped notes so far)
        self.behind = ""  # why the machine is falling behind, in words; "" while it keeps up
        self.border_title = TITLE

    def started(self) -> None:
        """A new jam: its figures count from zero."""
        self.running = True
        self._history.clear()
        for history in (self.latency, self.rtf, self.lead):
            history.clear()
        self._late.clear()
        self._sampled_s = -math.inf
        self._warn("")
        self._last_note_s = {"in": -math.inf, "out": -math.inf}
        self.refresh()

    def stopped(self) -> None:
        """The jam ended: nothing plays, and the figures shown are the last jam's."""
        self.running = False
        self.refresh()

    def show(self, metrics, output, now_s: float | None = None) -> None:
        """A new reading (app thread); `now_s` (monotonic) for tests."""
        now_s = time.monotonic() if now_s is None else now_s
        last = self._history[-1] if self._history else None
        if last is not None and (metrics.notes_in < last[1] or metrics.notes_out < last[2]):
            self._history.clear()  # a new session counts from zero
            last = None
        if last is not None:
            if metrics.notes_in > last[1]:
                self._last_note_s["in"] = now_s
            if metrics.notes_out > last[2]:
                self._last_note_s["out"] = now_s
        self._history.append((now_s, metrics.notes_in, metrics.notes_out))
        self._remember(metrics, now_s)
        while len(self._history) > 2 and self._history[1][0] <= now_s - _RATE_WINDOW_S:
            self._history.popleft()
        # Ten times a second: lay out again only when the lost-messages line comes or goes.
        lines_change = self.metrics is None or _lost(self.output) != _lost(output)
        self.output = output
        self._now_s = now_s
        self.metrics = metrics
        self.refresh(layout=lines_change)

    def _remember(self, m, now_s: float) -> None:
        """A reading into the histories (every HISTORY_EVERY_S), and the warning it calls for."""
        if now_s - self._sampled_s >= HISTORY_EVERY_S:
            self._sampled_s = now_s
            self.latency.add(m.response_latency_ms_p50 if m.responses else math.nan)
            self.rtf.add(m.rtf)
            self.lead.add(m.lead_s)
        late = m.late_notes + m.dropped_onsets
        self._late.append((now_s, late))
        while len(self._late) > 1 and self._late[1][0] <= now_s - BEHIND_WINDOW_S:
            self._late.popleft()
        reasons = []
        if math.isfinite(m.rtf) and m.rtf < BEHIND_RTF:
            reasons.append(f"rtf {m.rtf:.1f}")
        recent_late = late - self._late[0][1]
        if recent_late > 0:
            reasons.append(f"{recent_late} late")
        self._warn(", ".join(reasons))

    def _warn(self, reasons: str) -> None:
        self.behind = reasons
        self.border_title = f"{TITLE} [b red]⚠ behind: {reasons}[/]" if reasons else TITLE

    def active(self, player: str) -> bool:
        """Whether the performer ("in") or the AI ("out") played a note in the last moment."""
        return self.running and self.metrics is not None and self._now_s - self._last_note_s[player] <= _ACTIVE_S

    def rate(self, player: str) -> float:
        """Notes per second over the last couple of seconds."""
        if len(self._history) < 2 or not self.running:
            return 0.0
        (t0, in0, out0), (t1, in1, out1) = self._history[0], self._history[-1]
        if t1 <= t0:
            return 0.0
        return ((in1 - in0) if player == "in" else (out1 - out0)) / (t1 - t0)

    def render(self) -> Text:
        # Lines of at most ~40 columns: the meters share an 80-column terminal with the ports.
        m = self.metrics
        if m is None:
            return Text("you ○ notes in  –\nAI  ○ notes out –\nresponses –  p50 –  p99 –\n"
                        "rtf –  lead –  late p99 –\necho –  dropped –  generation errors –\n"
                        "lat –  rtf –  lead –", style="dim")
        text = Text()
        for label, player, count in (("you", "in", m.notes_in), ("AI ", "out", m.notes_out)):
            on = self.active(player)
            text.append(f"{label} ")
            text.append("●" if on else "○", style="bold green" if on else "dim")
            text.append(f" notes {player:<3} {count:<5} {self.rate(player):4.1f}/s")
            if player == "out" and self.output is not None:
                text.append(f"  sounding {self.output.sounding}")
            text.append("\n")
        if m.responses:
            text.append(f"responses {m.responses}  p50 {m.response_latency_ms_p50:.0f} ms"
                        f"  p99 {m.response_latency_ms_p99:.0f} ms\n")
        else:
            text.append("responses 0  p50 –  p99 –\n")
        rtf = f"{m.rtf:.1f}" if math.isfinite(m.rtf) else "–"
        text.append(f"rtf {rtf}", style="bold red" if math.isfinite(m.rtf) and m.rtf < 1.0 else "")
        text.append(f"  lead {_figure(m.lead_s, '.2f', ' s')}  late p99 {_figure(m.lateness_ms_p99, '.1f', ' ms')}\n")
        text.append(f"echo {m.echo_rate:.0%}  ")
        text.append(f"dropped {m.dropped_onsets}", style="bold red" if m.dropped_onsets else "")
        text.append("  ")
        text.append(f"generation errors {m.generation_errors}", style="bold red" if m.generation_errors else "")
        text.append(self._trends())
        if self.output is not None and self.output.send_errors:
            text.append(f"\n{self.output.send_errors} messages lost to a vanished output port", style="red")
        if not self.running:
            text.stylize("dim")  # the last jam's figures, not a live reading
        return text


    def _trends(self) -> Text:
        """Sparklines of the last readings: response latency (from 0), rtf (red below 1) and lead."""
        width = max(4, (self.size.width - len("lat  rtf  lead ")) // 3)
        text = Text("\nlat ")
        text.append(self.latency.sparkline(width, low=0.0), style="cyan")
        text.append(" rtf ")
        finite = [v for v in self.rtf.values if math.isfinite(v)]
        text.append(self.rtf.sparkline(width, low=0.0), style="red" if finite and finite[-1] < 1.0 else "green")
        text.append(" lead ")
        text.append(self.lead.sparkline(width, low=0.0), style="cyan")
        return text


def _figure(value: float, spec: str, unit: str) -> str:
    """`value` with its unit, or "–" while there is no figure yet (NaN before the first note)."""
    return f"{value:{spec}}{unit}" if math.isfinite(value) else "–"


def _lost(output) -> bool:
    return output is not None and output.send_errors > 0
