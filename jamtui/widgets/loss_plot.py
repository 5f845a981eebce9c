"""A text plot of a training run's train and validation loss: one glyph per point in a grid of
characters, two of the 16 terminal colours (and two glyphs, for a terminal with none)."""
from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

TRAIN_GLYPH, VAL_GLYPH = "•", "◆"
TRAIN_STYLE, VAL_STYLE = "cyan", "yellow"  # ANSI colours: fine in a 16-colour terminal
_AXIS_WIDTH = 7  # "12.345┤"


def loss_chart(train: list[tuple[int, float]], val: list[tuple[int, float]], width: int,
               height: int) -> list[Text]:
    """`height` lines of `width` cells: the losses by step, the highest value on top, with the
    top and bottom values on a left axis; a line saying there is nothing yet when both are empty."""
    if not train and not val:
        return [Text("loss: no figures yet", style="dim")]
    columns, rows = max(1, width - _AXIS_WIDTH), max(2, height)
    values = [v for _, v in train + val]
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    last_step = max(1, max(s for s, _ in train + val))
    grid: list[list[tuple[str, str]]] = [[(" ", "")] * columns for _ in range(rows)]
    for series, glyph, style in ((train, TRAIN_GLYPH, TRAIN_STYLE), (val, VAL_GLYPH, VAL_STYLE)):
        for column, value in _columns(series, last_step, columns).items():
            row = round((high - value) / (high - low) * (rows - 1))
            grid[row][column] = (glyph, style)  # the validation points, drawn last, stay on top
    lines = []
    for i, cells in enumerate(grid):
        label = f"{high:6.3f}┤" if i == 0 else f"{low:6.3f}┤" if i == rows - 1 else "      │"
        line = Text(label[-_AXIS_WIDTH:].rjust(_AXIS_WIDTH), style="dim")
        for glyph, style in cells:
            line.append(glyph, style=style)
        lines.append(line)
    return lines


def _columns(series: list[tuple[int, float]], last_step: int, columns: int) -> dict[int, float]:
    """The mean value of the points falling in each column (steps spread over the width)."""
    sums: dict[int, list[float]] = {}
    for step, value in series:
        column = min(columns - 1, round(step / last_step * (columns - 1)))
        sums.setdefault(column, []).append(value)
    return {column: sum(vs) / len(vs) for column, vs in sums.items()}


def legend(train: list[tuple[int, float]], val: list[tuple[int, float]]) -> Text:
    """The glyphs and the latest value of each series."""
    text = Text()
    text.append(f"{TRAIN_GLYPH} train", style=TRAIN_STYLE)
    text.append(f" {train[-1][1]:.3f}" if train else " -")
    text.append("   ")
    text.append(f"{VAL_GLYPH} validation", style=VAL_STYLE)
    text.append(f" {val[-1][1]:.3f}" if val else " -")
    return text


class LossPlot(Widget):
    """The plot, redrawn to the widget's size; `show(train, val)` gives it the points so far."""

    DEFAULT_CSS = """
    LossPlot {
        height: 7;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []

    def show(self, train: list[tuple[int, float]], val: list[tuple[int, float]]) -> None:
        self.train, self.val = list(train), list(val)
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_size.width, self.content_size.height
        lines = loss_chart(self.train, self.val, width, height - 1) + [legend(self.train, self.val)]
        return Text("\n").join(lines)
