"""The status block: whether the jam runs and where, its mode and turn, what it hears of the performer
(chord, key, tempo) and the tempo it tells the model, whether the AI is muted, preset, model and recording."""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

STOPPED, STARTING, RUNNING, STOPPING = "stopped", "starting", "running", "stopping"


@dataclass(frozen=True)
class Status:
    state: str = STOPPED
    route: str = ""
    mode: str = ""
    turn: str = ""  # call-and-response: whose turn it is
    preset: str = ""
    next_preset: str = ""  # asked for, waiting for the phrase being played to end
    model: str = ""
    model_state: str = ""  # "loading", "ready" or "failed"
    recording: bool = False  # armed: records whenever the jam runs
    recording_now: bool = False
    problem: str = ""  # the last engine error, shown until the next start
    ai_muted: bool = False
    chord: str = ""  # what the jam hears the performer play now ...
    key: str = ""
    tempo_bpm: float | None = None  # ... his pulse
    told_bpm: float | None = None  # the tempo the model is told (tapped), None: it follows his pulse


class JamStatus(Widget):
    DEFAULT_CSS = """
    JamStatus { height: auto; }
    """

    status = reactive(Status, layout=True)

    def render(self) -> Text:
        s = self.status
        text = Text()
        if s.state == RUNNING:
            text.append("▶ jamming  ", style="bold green")
            text.append(s.route)
        else:
            text.append(f"■ {s.state}", style="bold")
            if s.state == STOPPED:
                text.append("  (space to start)", style="dim")
        if s.ai_muted:
            text.append("  AI muted", style="bold yellow")
        if s.recording_now:
            text.append("   ● REC", style="bold red")
        elif s.recording:
            text.append("   ○ record armed", style="red")
        text.append("\nmode    ", style="dim")
        text.append(s.mode, style="bold")
        if s.turn:
            text.append(f"  · {s.turn}")
        text.append("\nhears   ", style="dim")
        text.append(_hears(s))
        text.append("\npreset  ", style="dim")
        text.append(s.preset, style="bold")
        if s.next_preset:
            text.append(f"  → {s.next_preset} after this phrase", style="yellow")
        text.append("\nmodel   ", style="dim")
        if s.model_state == "loading":
            text.append(f"loading model {s.model}…", style="yellow")
        elif s.model_state == "failed":
            text.append(f"{s.model}: could not load", style="bold red")
        else:
            text.append(s.model)
        if s.problem:
            text.append(f"\n✖ {s.problem}", style="bold red")
        return text


def _hears(s: Status) -> Text:
    """The performer's chord, key and tempo as the jam hears them ("–" for what it cannot tell yet),
    and the tempo the model is told when one was tapped."""
    text = Text()
    text.append(s.chord or "–", style="bold")
    text.append("  key ", style="dim")
    text.append(s.key or "–", style="bold")
    text.append("  ")
    text.append(f"{s.tempo_bpm:.0f}" if s.tempo_bpm else "–", style="bold")
    text.append(" bpm")
    if s.told_bpm:
        text.append(f"  told {s.told_bpm:.0f}", style="magenta")
    return text
