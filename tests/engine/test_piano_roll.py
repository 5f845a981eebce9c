"""Piano-roll pictures: known notes land on known pixels, and the PNG writer's files decode."""
from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from engine.events import AI, PERFORMER, Note
from engine.midi.midifile import write_duet
from engine.offline.piano_roll import (AI_RGB, BACKGROUND_RGB, MIDDLE_C_LINE_RGB, OCTAVE_LINE_RGB, PERFORMER_RGB,
                                       PNG_SIGNATURE, png_bytes, render, render_file, write_png)
from tests.conftest import REPO

# A small roll: keys 48..84 (37 rows of 4 px), 5 s at 10 px/s.
ROLL = {"start_s": 0.0, "seconds": 5.0, "px_per_s": 10, "px_per_key": 4, "low": 48, "high": 84}


def pixel(image, t_s, pitch):
    """The pixel in the middle of a key's row at a time, in ROLL's geometry."""
    return tuple(int(v) for v in image[(ROLL["high"] - pitch) * 4 + 1, round(t_s * 10)])


def decode_png(data: bytes) -> np.ndarray:
    """A minimal decoder for what write_png writes: 8-bit RGB, filter 0; checks every chunk's CRC."""
    assert data[:8] == PNG_SIGNATURE
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(chunks[1][1])
    assert len(raw) == height * (1 + width * 3)
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * 3)
    assert not rows[:, 0].any()  # filter type 0 (none) on every row
    return rows[:, 1:].reshape(height, width, 3)


def test_notes_land_on_their_keys_and_seconds_in_their_players_colours():
    performer = [Note(1.0, 2.0, 60, 127, PERFORMER)]
    ai = [Note(3.0, 4.0, 72, 127, AI)]
    image = render(performer, ai, **ROLL)
    assert image.shape == ((84 - 48 + 1) * 4, 50, 3) and image.dtype == np.uint8
    assert pixel(image, 1.5, 60) == PERFORMER_RGB
    assert pixel(image, 3.5, 72) == AI_RGB
    for t_s, pitch in [(2.5, 60), (1.5, 61), (1.5, 59), (3.5, 70), (0.5, 72), (4.5, 84)]:
        assert pixel(image, t_s, pitch) == BACKGROUND_RGB, (t_s, pitch)


def test_grid_marks_every_c_and_middle_c_darker():
    image = render([], [], **ROLL)
    c_line = lambda pitch: tuple(int(v) for v in image[(84 - pitch + 1) * 4 - 1, 5])  # a C row's lower edge
    assert c_line(48) == c_line(72) == OCTAVE_LINE_RGB
    assert c_line(60) == MIDDLE_C_LINE_RGB
    assert sum(MIDDLE_C_LINE_RGB) < sum(OCTAVE_LINE_RGB) < sum(BACKGROUND_RGB)
    second, fifth = image[2, 10].astype(int), image[2, 0].astype(int)  # 1 s and 0 s (a multiple of 5)
    assert sum(fifth) < sum(second) < sum(BACKGROUND_RGB)


def test_louder_notes_are_darker():
    soft, loud = Note(1.0, 2.0, 60, 30, PERFORMER), Note(1.0, 2.0, 64, 120, PERFORMER)
    image = render([soft, loud], [], **ROLL)
    assert sum(pixel(image, 1.5, 64)) < sum(pixel(image, 1.5, 60)) < sum(BACKGROUND_RGB)


def test_where_both_players_sound_both_colours_show():
    image = render([Note(1.0, 3.0, 60, 127, PERFORMER)], [Note(1.0, 3.0, 60, 127, AI)], **ROLL)
    row = (84 - 60) * 4
    colours = {tuple(rgb) for rgb in image[row:row + 4, 12:28].reshape(-1, 3)}
    assert colours == {PERFORMER_RGB, AI_RGB}


def test_window_cuts_notes_and_leaves_out_keys_outside_the_range():
    notes = [Note(9.0, 11.0, 60, 127, PERFORMER), Note(10.5, 11.0, 30, 127, PERFORMER)]
    image = render(notes, [], **{**ROLL, "start_s": 10.0})
    assert pixel(image, 0.5, 60) == PERFORMER_RGB
    assert pixel(image, 1.5, 60) == BACKGROUND_RGB


def test_a_title_adds_a_header_above_the_same_roll():
    notes = [Note(1.0, 2.0, 60, 127, PERFORMER)]
    plain = render(notes, [], **ROLL)
    titled = render(notes, [], **ROLL, title="duet 1")
    header = titled.shape[0] - plain.shape[0]
    assert header > 0 and titled.shape[1:] == plain.shape[1:]
    assert np.array_equal(titled[header:], plain)
    assert (titled[:header] != BACKGROUND_RGB).any()  # the title's ink


def test_write_png_round_trips_the_pixels(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    path = tmp_path / "roll.png"
    write_png(path, image)
    data = path.read_bytes()
    assert data == png_bytes(image)
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (11, 7)
    assert np.array_equal(decode_png(data), image)
    assert [p.name for p in tmp_path.iterdir()] == ["roll.png"]  # no tmp file left behind


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8),
                                 np.zeros((0, 4, 3), np.uint8)])
def test_write_png_refuses_what_is_not_an_rgb_image(tmp_path, bad):
    with pytest.raises(ValueError):
        write_png(tmp_path / "x.png", bad)


def test_render_file_draws_a_recorded_duet(tmp_path):
    duet = tmp_path / "duet.mid"
    write_duet(duet, [Note(1.0, 2.0, 60, 127, PERFORMER), Note(3.0, 4.0, 72, 127, AI)])
    out = tmp_path / "duet.png"
    image = render_file(duet, out, **ROLL)
    assert np.array_equal(decode_png(out.read_bytes()), image)
    assert pixel(image, 1.5, 60) == PERFORMER_RGB and pixel(image, 3.5, 72) == AI_RGB


def test_script_names_a_bad_midi_file_in_one_line(tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"not midi at all")
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "piano-roll"), str(bad), str(tmp_path / "x.png")],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("piano-roll: error: ") and "broken.mid" in line
    assert not (tmp_path / "x.png").exists()
