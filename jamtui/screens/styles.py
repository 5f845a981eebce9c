"""The styles panel: the styles trained from your playing with their figures (base vs style bits per
second of music on the corpus's validation files); play one, or a blend of two with weights 0-2,
handed on as a `--style` spec (`NAME[:WEIGHT],...`, or `none`)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from engine.model.adapters import MAX_WEIGHT
from engine.style.listing import StyleEntry, list_styles
from engine.user_dirs import styles_dir
from jamtui.screens.help import PANEL_HELP

WEIGHT_STEP = 0.1
NO_STYLE = "none"  # the spec that plays the model alone


def read_styles(directory: Path | None = None) -> list[StyleEntry]:
    """The styles in `directory` (default: the user's styles dir), by name, with their card's figures."""
    return list_styles(directory)


def blend_spec(choices: list[tuple[str, float]]) -> str:
    """The `--style` spec of (style, weight) pairs: `a:1,b:0.5`; `none` for no style."""
    return ",".join(f"{name}:{weight:g}" for name, weight in choices) or NO_STYLE


def parse_spec(spec: str) -> list[tuple[str, float]]:
    """The (style, weight) pairs of a spec `blend_spec` wrote (a weight left out is 1)."""
    pairs = []
    for item in spec.split(","):
        name, _, weight = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "1")
        try:
            pairs.append((name.strip(), float(weight)))
        except ValueError:
            continue
    return [(name, weight) for name, weight in pairs if name and name != NO_STYLE]


class StylesScreen(ModalScreen[str | None]):
    """`switch_style(spec)` gets the chosen spec (`p` plays it, `n` plays no style); the screen is
    dismissed with the spec, or None when closed without one. `current`: the spec playing now.
    `directory`: where the styles are (default: the user's styles dir)."""

    DEFAULT_CSS = """
    StylesScreen { align: center middle; }
    #styles { width: 100%; max-width: 100; height: 100%; padding: 0 1; background: $surface; }
    #styles-title { height: 1; }
    #styles-table { height: 1fr; }
    #styles-card { height: auto; max-height: 4; color: $text-muted; }
    #styles-blend { height: auto; margin-top: 1; }
    #styles-message { height: auto; }
    #styles-message.problem { color: $error; }
    """

    BINDINGS = [
        Binding("escape,q", "dismiss(None)", "Close", id="styles_close"),
        Binding("a", "choose(0)", "Pick", id="styles_pick"),
        Binding("b", "choose(1)", "Blend in", id="styles_blend"),
        Binding("x", "unblend", "Unblend", id="styles_unblend", show=False),
        Binding("minus", "weigh(0, -1)", "Weight A down", id="styles_weight_a_down", show=False),
        Binding("plus,equals_sign", "weigh(0, 1)", "Weight A up", id="styles_weight_a_up", show=False),
        Binding("left_square_bracket", "weigh(1, -1)", "Weight B down", id="styles_weight_b_down", show=False),
        Binding("right_square_bracket", "weigh(1, 1)", "Weight B up", id="styles_weight_b_up", show=False),
        Binding("p", "play", "Play", id="styles_play"),
        Binding("n", "play_none", "No style", id="styles_none"),
        Binding("r", "refresh_styles", "Rescan", id="styles_rescan", show=False),
        PANEL_HELP,
    ]

    def __init__(self, current: str = "", *, switch_style: Callable[[str], None] | None = None,
                 directory: Path | None = None) -> None:
        super().__init__()
        self.current = current
        self.switch_style = switch_style
        self.directory = directory
        self.rows: list[StyleEntry] = []
        self.chosen = parse_spec(current)[:2]  # style A, then the one blended in (B)

    def compose(self) -> ComposeResult:
        with Vertical(id="styles"):
            playing = f"  ·  playing {self.current}" if self.current else ""
            yield Static(Text.assemble(("styles", "bold"), f"{playing}  ·  esc closes"), id="styles-title")
            yield DataTable(id="styles-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="styles-card")
            yield Static("", id="styles-blend")
            yield Static("", id="styles-message")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("style", "corpus", "rank", "size", "bits/s base→style", "change")
        self.action_refresh_styles()
        self._draw_blend()
        table.focus()

    # -- actions -----------------------------------------------------------------------------

    def action_refresh_styles(self) -> None:
        """Read the styles dir again (a style trained since shows up)."""
        self.rows = read_styles(self.directory)
        table = self.query_one(DataTable)
        table.clear()
        for row in self.rows:
            if row.problem is not None:
                table.add_row(row.name, "(cannot play)", "", "", "", "", key=row.name)
                continue
            base, style = row.base_bits_per_s, row.style_bits_per_s
            fit = f"{base:g} → {style:g}" if base is not None and style is not None else "-"
            change = f"{style / base - 1:+.1%}" if base and style is not None else "-"
            table.add_row(row.name, row.corpus or "-", str(row.rank), _size(row.size_bytes), fit, change,
                          key=row.name)
        if not self.rows:
            self._say(f"no styles yet in {self.directory or styles_dir()}: train one (jamtui train, or the "
                      "training screen)")
        self._show_card()

    def action_choose(self, slot: int) -> None:
        row = self._highlighted()
        if row is None:
            return
        if row.problem is not None:
            self._say(f"{row.name} cannot play: {row.problem}", problem=True)
            return
        if slot == 0:  # A: this one; a B other than it stays blended in
            self.chosen = [(row.name, 1.0), *(c for c in self.chosen[1:] if c[0] != row.name)]
        elif not self.chosen or self.chosen[0][0] == row.name:
            self._say("pick a first style (a), then blend another one in (b)", problem=True)
            return
        else:
            self.chosen = [self.chosen[0], (row.name, 1.0)]
        self._say("")
        self._draw_blend()

    def action_unblend(self) -> None:
        self.chosen = self.chosen[:1]
        self._draw_blend()

    def action_weigh(self, slot: int, direction: int) -> None:
        if slot >= len(self.chosen):
            self._say("no style " + "AB"[slot] + " to weigh yet", problem=True)
            return
        name, weight = self.chosen[slot]
        new = round(min(MAX_WEIGHT, max(0.0, weight + direction * WEIGHT_STEP)), 2)
        self.chosen[slot] = (name, new)
        self._draw_blend()

    def action_play(self) -> None:
        if not self.chosen:
            self._say("pick a style first (a), or n for no style", problem=True)
            return
        self._hand_on(blend_spec(self.chosen))

    def action_play_none(self) -> None:
        self._hand_on(NO_STYLE)

    def _hand_on(self, spec: str) -> None:
        if self.switch_style is not None:
            self.switch_style(spec)
        self.dismiss(spec)

    # -- drawing -----------------------------------------------------------------------------

    @on(DataTable.RowHighlighted)
    def _highlighted_changed(self) -> None:
        self._show_card()

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_choose(0)  # Enter picks, like `a`

    def _highlighted(self) -> StyleEntry | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def _show_card(self) -> None:
        row = self._highlighted()
        text = "" if row is None else _card_summary(row.card) if row.problem is None else f"cannot play: {row.problem}"
        self.query_one("#styles-card", Static).update(Text(text))

    def _draw_blend(self) -> None:
        text = Text("to play: ", style="bold")
        if not self.chosen:
            text.append("nothing chosen  ·  a or enter: pick  ·  b: blend in  ·  n: no style", style="not bold")
        else:
            parts = "  +  ".join(f"{'AB'[i]} {name} × {weight:g}" for i, (name, weight) in enumerate(self.chosen))
            keys = "-/+ weight A" + ("  [ ] weight B  x: unblend" if len(self.chosen) > 1 else "  b: blend in")
            text.append(f"{parts}  ·  {keys}  ·  p plays {blend_spec(self.chosen)}", style="not bold")
        self.query_one("#styles-blend", Static).update(text)

    def _say(self, text: str, problem: bool = False) -> None:
        line = self.query_one("#styles-message", Static)
        line.update(Text(text))
        line.set_class(problem, "problem")


def _card_summary(card: dict[str, Any]) -> str:
    """What the card says of how the style was made, in a line or two."""
    parts = []
    run = card.get("run") if isinstance(card.get("run"), dict) else {}
    if "method" in card:
        parts.append(str(card["method"]))
    if run:
        parts.append(f"{run.get('steps', '?')} steps (best {run.get('best_step', '?')}, "
                     f"{run.get('stopped_because', '?')}) on {run.get('device', '?')}")
    corpus = card.get("corpus") if isinstance(card.get("corpus"), dict) else {}
    if isinstance(corpus.get("hours"), (int, float)):
        parts.append(f"{corpus['hours']:.2f} h of playing")
    if card.get("created"):
        parts.append(f"made {str(card['created'])[:16]}")
    return "  ·  ".join(parts) or "no card: figures unknown"


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "-"
    return f"{size_bytes / 1e6:.1f} MB" if size_bytes >= 1e5 else f"{size_bytes / 1e3:.1f} kB"
