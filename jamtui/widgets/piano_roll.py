"""The live piano roll: both players' last seconds scrolling left past a "now" line, the AI's
notes written ahead (scheduled, not sounded yet) to its right, velocity as shade, the pitch range
following the music. Two pitches per text row (half blocks), sixteen colours, drawn from the
bridge's bounded snapshot (`RecentNotes`) at its poll rate, never per note."""
from __future__ import annotations

import enum
import itertools
import math
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

from engine.events import PERFORMER

PAST_S = 6.0  # seconds of the past on screen ...
AHEAD_S = 2.0  # ... and of what the AI wrote ahead
LOUD_VELOCITY = 80  # at or above: the bright shade of the player's colour
GUTTER = 4  # columns of pitch names on the left ("C4 ")
MARGIN_PITCHES = 2  # room kept above and below the notes when the range moves
MIDDLE_C = 60
_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


class Cell(enum.IntEnum):
    """What one half of a text cell shows; later members are drawn over earlier ones."""

    EMPTY = 0
    AHEAD = 1  # an AI note written ahead, not sounded yet
    AI_SOFT = 2
    AI_LOUD = 3
    PERFORMER_SOFT = 4
    PERFORMER_LOUD = 5
    BOTH = 6  # both players on the same pitch at the same moment


# Chosen so that a 16-colour terminal (or 256 over SSH) still tells all six apart: each is
# nearest to its own standard colour (blue, bright blue, yellow, bright yellow, grey, white).
COLOURS = {Cell.AHEAD: "#7a7a7a", Cell.AI_SOFT: "#9a7000", Cell.AI_LOUD: "#ffb000",
           Cell.PERFORMER_SOFT: "#24409a", Cell.PERFORMER_LOUD: "#4a7dff", Cell.BOTH: "#ffffff"}
LEGEND = (f"roll [{COLOURS[Cell.PERFORMER_LOUD]}]▀[/]you [{COLOURS[Cell.AI_LOUD]}]▀[/]AI "
          f"[{COLOURS[Cell.AHEAD]}]▀[/]ahead · soft [{COLOURS[Cell.PERFORMER_SOFT]}]▀[/]"
          f"[{COLOURS[Cell.AI_SOFT]}]▀[/]")
_NOTHING = (Cell.EMPTY, Cell.EMPTY)
_DIM = Style(color="bright_black")  # pitch names and the now line
_PLAYER = {Cell.AHEAD: "ai", Cell.AI_SOFT: "ai", Cell.AI_LOUD: "ai", Cell.PERFORMER_SOFT: "you",
           Cell.PERFORMER_LOUD: "you"}


@dataclass(frozen=True)
class PitchView:
    """The pitches on screen: `step` semitones per half row, from `low` up (`rows` text rows)."""

    low: int
    step: int
    rows: int

    @property
    def high(self) -> int:
        """The first pitch above the view."""
        return self.low + 2 * self.rows * self.step

    def half_row(self, pitch: int) -> int | None:
        """Which half row (0 = the top one) shows `pitch`; None when it is off the view."""
        if not self.low <= pitch < self.high:
            return None
        return 2 * self.rows - 1 - (pitch - self.low) // self.step

    def follow(self, lowest: int | None, highest: int | None, rows: int) -> PitchView:
        """The view for notes from `lowest` to `highest`: this one while they fit in it and would
        not fit a finer one with room to spare (no jitter), else the finest that fits them, centred on them."""
        if lowest is None or highest is None:
            return self if rows == self.rows else PitchView(self.low, self.step, rows)
        need = highest - lowest + 1 + 2 * MARGIN_PITCHES
        step = max(1, math.ceil(need / (2 * rows)))
        fits = self.low <= lowest and highest < self.high
        if rows == self.rows and fits and math.ceil(need * 1.3 / (2 * rows)) >= self.step:
            return self
        span = 2 * rows * step
        low = (lowest + highest + 1) // 2 - span // 2
        aligned = low - low % step  # rows on whole steps from C-1, where that keeps every note in view
        for candidate in (aligned, aligned + step, low):
            if candidate <= lowest and highest < candidate + span:
                low = candidate
                break
        return PitchView(min(max(low, 0), max(128 - span, 0)), step, rows)


def pitch_view(rows: int) -> PitchView:
    """The view before any note: middle C in the middle, one semitone per half row."""
    return PitchView(MIDDLE_C - rows, 1, rows)


def _note_cell(note, ahead: bool) -> Cell:
    if ahead:
        return Cell.AHEAD
    loud = note.velocity >= LOUD_VELOCITY
    if note.player == PERFORMER:
        return Cell.PERFORMER_LOUD if loud else Cell.PERFORMER_SOFT
    return Cell.AI_LOUD if loud else Cell.AI_SOFT


def draw(recent, view: PitchView, columns: int, *, past_s: float = PAST_S,
         ahead_s: float = AHEAD_S) -> tuple[list[list[Cell]], int]:
    """The picture of `recent` (`engine.duet.heard.RecentNotes`): 2 * view.rows half rows of
    `columns` cells (time runs right, `past_s` before now to `ahead_s` after), and the column of now."""
    grid = [[Cell.EMPTY] * columns for _ in range(2 * view.rows)]
    if columns <= 0:
        return grid, 0
    s_per_column = (past_s + ahead_s) / columns
    now_column = min(columns - 1, round(past_s / s_per_column))
    start_s = recent.now_s - past_s
    layers = ((recent.ai_ahead, True), (recent.ai_sounded, False), (recent.performer, False))
    for notes, ahead in layers:
        for note in notes:
            row = view.half_row(note.pitch)
            if row is None:
                continue
            first = max(0, int((note.start_s - start_s) / s_per_column))
            last = min(columns - 1, int((note.end_s - start_s) / s_per_column - 1e-9))
            if last < first < columns and note.end_s > start_s:
                last = first  # a note shorter than a column still shows
            if last < first:
                continue  # outside the window
            cell = _note_cell(note, ahead)
            line = grid[row]
            if line.count(Cell.EMPTY) == columns or not any(line[first:last + 1]):  # the usual case: free
                line[first:last + 1] = [cell] * (last + 1 - first)
                continue
            for x in range(first, last + 1):
                line[x] = _over(line[x], cell)
    return grid, now_column


def _over(below: Cell, above: Cell) -> Cell:
    if below is Cell.EMPTY:
        return above
    if below is Cell.BOTH:
        return below
    if Cell.AHEAD not in (below, above) and _PLAYER[below] != _PLAYER[above]:
        return Cell.BOTH
    return max(below, above)


def pitch_name(pitch: int) -> str:
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


class PianoRoll(Widget):
    """Shows the last `RecentNotes` it was given (`show`, from the bridge's poll); draws only when
    a new snapshot comes or its size changes, from that bounded snapshot."""

    DEFAULT_CSS = """
    PianoRoll { height: 1fr; min-height: 4; }
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.recent = None
        self.view = pitch_view(4)
        self._lines: list[Strip] = []
        self._drawn_for = None  # the snapshot the lines were drawn from ...
        self._drawn_size: Size | None = None  # ... at this size
        self._styles: dict[tuple[Cell, Cell], Style] = {}
        self.frames = 0  # pictures drawn so far: one per snapshot shown (and per resize), never one per note

    def show(self, recent) -> None:
        """A new snapshot (`engine.duet.heard.RecentNotes`), or None: no jam."""
        self.recent = recent
        self.refresh()

    def picture(self, size: Size) -> tuple[list[list[Cell]], int]:
        """The cells for a widget of `size` (what `render_line` draws; tests read it)."""
        rows, columns = max(size.height, 1), max(size.width - GUTTER, 0)
        recent = self.recent
        if recent is None:
            self.view = self.view.follow(None, None, rows)
            now_column = min(columns - 1, round(columns * PAST_S / (PAST_S + AHEAD_S)))
            return [[Cell.EMPTY] * columns for _ in range(2 * rows)], now_column
        pitches = [n.pitch for notes in (recent.performer, recent.ai_sounded, recent.ai_ahead) for n in notes]
        self.view = self.view.follow(min(pitches, default=None), max(pitches, default=None), rows)
        return draw(recent, self.view, columns)

    def render_line(self, y: int) -> Strip:
        size = self.size
        if self._drawn_for is not self.recent or self._drawn_size != size:  # once a snapshot, not a line
            self._drawn_for, self._drawn_size = self.recent, size
            self._lines = self._strips(size)
            self.frames += 1
        return self._lines[y] if 0 <= y < len(self._lines) else Strip.blank(size.width)

    def _strips(self, size: Size) -> list[Strip]:
        """One strip a row: runs of equal cells become one segment each (cheap for a sparse roll)."""
        grid, now_column = self.picture(size)
        view = self.view
        strips = []
        for y in range(size.height):
            segments = [Segment(self._label(view, y), _DIM)]
            x = 0
            for pair, run in itertools.groupby(zip(grid[2 * y], grid[2 * y + 1])):
                n = sum(1 for _ in run)
                if pair == _NOTHING and x <= now_column < x + n:  # the now line, where no note hides it
                    before = now_column - x
                    segments += [Segment(" " * before), Segment("│", _DIM), Segment(" " * (n - before - 1))]
                else:
                    text, style = self._cell(*pair)
                    segments.append(Segment(text * n, style))
                x += n
            strips.append(Strip(segments, size.width).crop(0, size.width))
        return strips

    def _label(self, view: PitchView, y: int) -> str:
        """The name of a C shown on row y (or the row's top pitch on the top row), else blanks."""
        top_pitch = view.high - 1 - 2 * y * view.step
        pitches = range(top_pitch, top_pitch - 2 * view.step, -1)
        c = next((p for p in pitches if p % 12 == 0), None)
        name = pitch_name(c) if c is not None else (pitch_name(top_pitch) if y == 0 else "")
        return name[:GUTTER - 1].ljust(GUTTER)

    def _cell(self, upper: Cell, lower: Cell) -> tuple[str, Style | None]:
        if upper is Cell.EMPTY and lower is Cell.EMPTY:
            return " ", None
        style = self._styles.get((upper, lower))
        if upper is Cell.EMPTY:
            text = "▄"
        elif lower is Cell.EMPTY or lower is upper:
            text = "▀" if lower is Cell.EMPTY else "█"
        else:
            text = "▀"
        if style is None:
            if upper is Cell.EMPTY:
                style = Style(color=COLOURS[lower])
            elif lower is Cell.EMPTY or lower is upper:
                style = Style(color=COLOURS[upper])
            else:
                style = Style(color=COLOURS[upper], bgcolor=COLOURS[lower])
            self._styles[(upper, lower)] = style
        return text, style
