"""Piano-roll pictures of a duet (for docs): `render` draws both players' notes as an RGB array,
`write_png` saves one without any imaging library, `render_file` does both for a duet file."""
from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.events import Note
from engine.midi.midifile import atomic_write
from engine.offline.review import read_duet

PERFORMER_RGB = (25, 95, 205)  # a loud note's colour; softer notes fade toward the background
AI_RGB = (235, 110, 0)
BACKGROUND_RGB = (255, 255, 255)
OCTAVE_LINE_RGB = (228, 228, 228)  # the lower edge of every C's row
MIDDLE_C_LINE_RGB = (185, 185, 185)
SECOND_LINE_RGB = (240, 240, 240)
FIVE_SECONDS_LINE_RGB = (205, 205, 205)
TEXT_RGB = (60, 60, 60)
MIDDLE_C = 60

# A note's opacity runs from MIN_ALPHA (velocity 1) to 1 (velocity 127): louder is more saturated.
MIN_ALPHA = 0.25
ONSET_EXTRA_ALPHA = 0.35  # a note's first column is darker, so a re-strike shows where one note meets the next
HATCH_PX = 2  # where both players sound, diagonal stripes this wide alternate their colours

FONT_SCALE = 2  # the 3x5 bitmap font, doubled
HEADER_PAD_PX = 3

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Uppercase letters, digits and a little punctuation, 3 wide by 5 high, rows top to bottom.
_GLYPHS = {
    "A": "010101111101101", "B": "110101110101110", "C": "011100100100011", "D": "110101101101110",
    "E": "111100110100111", "F": "111100110100100", "G": "011100101101011", "H": "101101111101101",
    "I": "111010010010111", "J": "001001001101010", "K": "101101110101101", "L": "100100100100111",
    "M": "101111111101101", "N": "110101101101101", "O": "010101101101010", "P": "110101110100100",
    "Q": "010101101110011", "R": "110101110101101", "S": "011100010001110", "T": "111010010010010",
    "U": "101101101101111", "V": "101101101101010", "W": "101101111111101", "X": "101101010101101",
    "Y": "101101010010010", "Z": "111001010100111",
    "0": "111101101101111", "1": "010110010010111", "2": "110001010100111", "3": "110001010001110",
    "4": "101101111001001", "5": "111100110001110", "6": "011100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001110",
    "-": "000000111000000", "_": "000000000000111", ".": "000000000000010", ":": "000010000010000",
    "/": "001001010100100", "+": "000010111010000", "(": "010100100100010", ")": "010001001001010",
    " ": "000000000000000", "?": "110001010000010",
}
GLYPH_W, GLYPH_H = 3, 5


def render(performer: Sequence[Note], ai: Sequence[Note], *, start_s: float = 0.0, seconds: float = 30.0,
           px_per_s: float = 40, px_per_key: int = 4, low: int = 21, high: int = 108,
           title: str | None = None) -> np.ndarray:
    """The piano roll of `seconds` from `start_s` as a (H, W, 3) uint8 image: time runs right,
    pitch up (`high` in the top row, `low` in the bottom one). Notes outside the window or the
    key range are left out; ones that cross its edges are cut. A `title` adds a header strip
    above the roll with the title and a legend of the two colours."""
    if not seconds > 0 or not px_per_s > 0 or px_per_key < 1:
        raise ValueError(f"seconds, px_per_s and px_per_key must be positive (got {seconds}, {px_per_s}, {px_per_key})")
    if not 0 <= low <= high <= 127:
        raise ValueError(f"key range {low}..{high} is not within 0..127")
    width = max(1, round(seconds * px_per_s))
    height = (high - low + 1) * px_per_key
    roll = _grid(width, height, start_s=start_s, px_per_s=px_per_s, px_per_key=px_per_key, high=high, low=low)

    layers = [_alpha(notes, width, height, start_s=start_s, px_per_s=px_per_s, px_per_key=px_per_key,
                     low=low, high=high) for notes in (performer, ai)]
    painted = [roll * (1.0 - a[..., None]) + np.asarray(rgb, np.float32) * a[..., None]
               for a, rgb in zip(layers, (PERFORMER_RGB, AI_RGB))]
    mine, theirs = (a > 0 for a in layers)
    ys, xs = np.indices((height, width))
    performer_stripe = ((xs + ys) // HATCH_PX) % 2 == 0
    out = roll.copy()
    out[mine & ~theirs] = painted[0][mine & ~theirs]
    out[theirs & ~mine] = painted[1][theirs & ~mine]
    both = mine & theirs
    out[both & performer_stripe] = painted[0][both & performer_stripe]
    out[both & ~performer_stripe] = painted[1][both & ~performer_stripe]
    image = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if title is None:
        return image
    return np.concatenate([_header(title, width), image], axis=0)


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Save a (H, W, 3) uint8 image as an 8-bit RGB PNG, atomically (tmp file, then replace)."""
    data = png_bytes(image)
    atomic_write(Path(path), lambda f: f.write(data))


def png_bytes(image: np.ndarray) -> bytes:
    """The PNG file of a (H, W, 3) uint8 image: IHDR, one IDAT (filter type 0 on every row), IEND."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"a PNG needs a non-empty (H, W, 3) uint8 image, not {image.dtype} {image.shape}")
    height, width, _ = image.shape
    rows = np.zeros((height, 1 + width * 3), np.uint8)  # column 0: each row's filter byte, 0 = none
    rows[:, 1:] = image.reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour, deflate, no interlace
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
            + _chunk(b"IEND", b""))


def render_file(duet_path: str | os.PathLike, out_png: str | os.PathLike, **kw) -> np.ndarray:
    """Render a recorded duet file (`read_duet`: its performer and ai tracks) to `out_png`;
    `kw` goes to `render`. Returns the image."""
    performer, ai = read_duet(duet_path)
    image = render(performer, ai, **kw)
    write_png(out_png, image)
    return image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _grid(width: int, height: int, *, start_s: float, px_per_s: float, px_per_key: int, high: int,
          low: int) -> np.ndarray:
    """The empty roll, float RGB: a line under every C's row, a line at every whole second."""
    roll = np.empty((height, width, 3), np.float32)
    roll[:] = BACKGROUND_RGB
    for second in range(math.ceil(start_s), math.floor(start_s + width / px_per_s) + 1):
        x = round((second - start_s) * px_per_s)
        if 0 <= x < width:
            roll[:, x] = FIVE_SECONDS_LINE_RGB if second % 5 == 0 else SECOND_LINE_RGB
    for pitch in range(low, high + 1):
        if pitch % 12 == 0:
            roll[(high - pitch + 1) * px_per_key - 1] = MIDDLE_C_LINE_RGB if pitch == MIDDLE_C else OCTAVE_LINE_RGB
    return roll


def _alpha(notes: Sequence[Note], width: int, height: int, *, start_s: float, px_per_s: float,
           px_per_key: int, low: int, high: int) -> np.ndarray:
    """One player's opacity per pixel, 0 where it does not sound; the loudest note wins where its
    own notes overlap."""
    alpha = np.zeros((height, width), np.float32)
    for note in notes:
        if not low <= note.pitch <= high:
            continue
        x0 = math.floor((note.start_s - start_s) * px_per_s)
        x1 = max(x0 + 1, round((note.end_s - start_s) * px_per_s))  # at least one column, however short
        if x1 <= 0 or x0 >= width:
            continue
        a = MIN_ALPHA + (1.0 - MIN_ALPHA) * (min(max(note.velocity, 1), 127) - 1) / 126
        top = (high - note.pitch) * px_per_key
        rows = alpha[top:top + px_per_key]
        cut0, cut1 = max(x0, 0), min(x1, width)
        np.maximum(rows[:, cut0:cut1], a, out=rows[:, cut0:cut1])
        if x0 >= 0 and x1 - x0 > 1:
            np.maximum(rows[:, x0], min(1.0, a + ONSET_EXTRA_ALPHA), out=rows[:, x0])
    return alpha


def _header(title: str, width: int) -> np.ndarray:
    """A strip with the title at the left and the colour legend at the right (left out when the
    picture is too narrow for it)."""
    text_h = GLYPH_H * FONT_SCALE
    strip = np.empty((text_h + 2 * HEADER_PAD_PX, width, 3), np.uint8)
    strip[:] = BACKGROUND_RGB
    legend = (("PERFORMER", PERFORMER_RGB), ("AI", AI_RGB))
    swatch_gap = FONT_SCALE  # between a colour's square and its name
    entry_gap = 3 * (GLYPH_W + 1) * FONT_SCALE
    legend_w = sum(text_h + swatch_gap + _text_width(name) for name, _ in legend) + entry_gap * (len(legend) - 1)
    title_limit = width - HEADER_PAD_PX
    if legend_w + 2 * HEADER_PAD_PX <= width:
        x = width - HEADER_PAD_PX - legend_w
        title_limit = x - entry_gap // 2
        for name, rgb in legend:
            strip[HEADER_PAD_PX:HEADER_PAD_PX + text_h, x:x + text_h] = rgb
            x += text_h + swatch_gap
            _draw_text(strip, name, x, HEADER_PAD_PX)
            x += _text_width(name) + entry_gap
    _draw_text(strip, title, HEADER_PAD_PX, HEADER_PAD_PX, right_limit=title_limit)
    return strip


def _text_width(text: str) -> int:
    return max(0, len(text) * (GLYPH_W + 1) - 1) * FONT_SCALE


def _draw_text(image: np.ndarray, text: str, x: int, y: int, *, right_limit: int | None = None) -> None:
    """Draw `text` (uppercased; unknown characters as '?') with the 3x5 font from (x, y), the top
    left corner; the text stops before a glyph that would cross `right_limit` (default: the edge)."""
    limit = image.shape[1] if right_limit is None else right_limit
    for char in text.upper():
        if x + GLYPH_W * FONT_SCALE > limit:
            return
        bits = np.array([int(b) for b in _GLYPHS.get(char, _GLYPHS["?"])], bool).reshape(GLYPH_H, GLYPH_W)
        mask = np.kron(bits, np.ones((FONT_SCALE, FONT_SCALE), bool))
        image[y:y + mask.shape[0], x:x + mask.shape[1]][mask] = TEXT_RGB
        x += (GLYPH_W + 1) * FONT_SCALE
