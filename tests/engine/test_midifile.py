"""Loading MIDI files: exact tempo-mapped times and order, and one clear error for every bad file."""
from __future__ import annotations

import os
import struct

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.midi.midifile import MidiFileError, TimedMessage, load_midi_events, midi_duration_s
from tests import midi_fixtures as fx


def timeline(events: list[TimedMessage]) -> list[tuple[float, str]]:
    return [(e.t_s, e.data.hex(" ")) for e in events]


def assert_load_error(path, *words: str, **kw) -> MidiFileError:
    with pytest.raises(MidiFileError) as info:
        load_midi_events(path, **kw)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{os.fsdecode(path)}: "), text
    for word in words:
        assert word in text, text
    return info.value


def test_scale_times_and_order_are_exact(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, notes=3, step_s=0.25, velocity=80))
    assert timeline(events) == [
        (0.0, "90 3c 50"),
        (0.25, "80 3c 40"),
        (0.25, "90 3e 50"),
        (0.5, "80 3e 40"),
        (0.5, "90 40 50"),
        (0.75, "80 40 40"),
    ]
    assert midi_duration_s(events) == 0.75
    assert all(isinstance(e.data, bytes) for e in events)


def test_scale_parameters(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, name="s.mid", notes=8, step_s=0.125, velocity=33))
    assert [e.t_s for e in events if e.data[0] == 0x90] == [i * 0.125 for i in range(8)]
    assert [e.data[1] for e in events if e.data[0] == 0x90] == list(fx.SCALE_PITCHES[:8])
    assert {e.data[2] for e in events if e.data[0] == 0x90} == {33}
    assert midi_duration_s(events) == 1.0


def test_chords_pedal_tempo_change_and_velocity_zero(tmp_path):
    events = load_midi_events(fx.write_chords_with_pedal(tmp_path))
    assert timeline(events) == [
        (0.0, "c0 00"),
        (0.0, "b0 40 7f"),
        (0.0, "90 3c 5a"),
        (0.0, "90 40 5a"),
        (0.0, "90 43 5a"),
        (0.5, "80 3c 00"),  # note-on velocity 0 comes out as a note-off
        (0.5, "80 40 40"),
        (0.5, "80 43 40"),
        (0.5, "90 41 50"),
        (0.5, "90 45 50"),
        (0.5, "90 48 50"),
        (0.75, "b0 40 00"),
        (1.0, "80 41 40"),
        (1.0, "80 45 40"),
        (1.0, "80 48 40"),
        (1.0, "90 43 64"),
        (1.0, "90 47 64"),
        (1.0, "90 4a 64"),
        (1.5, "b0 40 7f"),  # 240 ticks after the change to 60 BPM: 0.5 s, not 0.25 s
        (2.0, "80 43 00"),
        (2.0, "80 47 40"),
        (2.0, "80 4a 40"),
        (2.0, "b0 40 00"),
    ]


def test_two_tracks_merge_with_the_conductor_tempo(tmp_path):
    events = load_midi_events(fx.write_two_tracks(tmp_path))
    # Equal times: the lower track first, each track in its own order.
    assert timeline(events) == [
        (0.0, "90 48 46"),
        (0.0, "91 30 3c"),
        (0.5, "80 48 40"),
        (0.5, "90 4a 46"),
        (1.0, "80 4a 40"),
        (1.0, "90 4c 46"),
        (1.0, "81 30 40"),
        (1.0, "91 2b 3c"),
        (2.0, "80 4c 40"),
        (2.0, "90 4d 46"),
        (3.0, "80 4d 40"),
        (3.0, "81 2b 40"),
    ]


def test_no_notes_is_an_error_unless_allowed(tmp_path):
    path = fx.write_no_notes(tmp_path)
    assert_load_error(path, "contains no notes")
    assert timeline(load_midi_events(path, require_notes=False)) == [(0.5, "b0 07 64")]


def test_only_velocity_zero_note_ons_count_as_no_notes(tmp_path):
    path = fx.write_raw(tmp_path, "zero.mid", [bytes([0, 0x90, 60, 0, 0, 0xFF, 0x2F, 0])])
    assert_load_error(path, "contains no notes")


@pytest.mark.parametrize(
    ("writer", "words"),
    [
        (fx.write_truncated, ("truncated", "track 1 ends early")),
        (fx.write_bad_header, ("not a MIDI file", "bad header")),
        (fx.write_garbage, ("malformed MIDI data",)),
        (fx.write_empty, ("empty file",)),
    ],
)
def test_broken_fixture_files(tmp_path, writer, words):
    assert_load_error(writer(tmp_path), *words)


def test_missing_directory_and_special_files(tmp_path):
    assert_load_error(tmp_path / "nope.mid", "no such file")
    assert_load_error(tmp_path, "is a directory")
    fifo = tmp_path / "pipe.mid"
    os.mkfifo(fifo)
    assert_load_error(fifo, "not a regular file")  # and does not block on open


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = fx.write_scale(tmp_path)
    path.chmod(0)
    assert_load_error(path, "permission denied")


def test_file_too_large(tmp_path):
    path = tmp_path / "huge.mid"
    with open(path, "wb") as f:
        f.truncate(80 * 2**20)  # sparse: costs no disk
    assert_load_error(path, "file too large (80 MB > 64 MB)")
    assert_load_error(fx.write_scale(tmp_path), "file too large (", "> 10 bytes)", max_bytes=10)


def test_every_truncation_of_a_good_file_is_an_error(tmp_path):
    data = fx.write_two_tracks(tmp_path).read_bytes()
    path = tmp_path / "cut.mid"
    for n_bytes in range(len(data)):
        path.write_bytes(data[:n_bytes])
        with pytest.raises(MidiFileError):
            load_midi_events(path)


def test_missing_track_is_truncation(tmp_path):
    data = fx.write_scale(tmp_path).read_bytes()
    path = tmp_path / "short.mid"
    path.write_bytes(data[:10] + struct.pack(">H", 2) + data[12:])  # claims 2 tracks, has 1
    assert_load_error(path, "truncated", "header says 2 tracks, found 1")


def test_message_running_past_its_chunk_is_truncation(tmp_path):
    # A note-on whose last data byte lies beyond the declared chunk length: mido alone
    # would read it from the next chunk.
    body = bytes([0, 0x90, 60])
    path = fx.write_raw(tmp_path, "straddle.mid", [body, bytes([0, 0x90, 60, 100, 0, 0xFF, 0x2F, 0])])
    assert_load_error(path, "truncated", "track 1 ends early")


@pytest.mark.parametrize(
    ("name", "body", "words"),
    [
        ("databyte.mid", bytes([0, 0x90, 60, 200]), ("malformed", "track 1", "0..127")),
        ("running.mid", bytes([0, 60, 100]), ("malformed", "running status")),
        ("status.mid", bytes([0, 0xF4, 0]), ("malformed", "undefined status byte")),
        ("tempo.mid", bytes([0, 0xFF, 0x51, 0]), ("malformed",)),
        ("tempo0.mid", bytes([0, 0xFF, 0x51, 3, 0, 0, 0, 0, 0x90, 60, 1]), ("malformed", "tempo of 0")),
        ("key.mid", bytes([0, 0xFF, 0x59, 2, 99, 9]), ("malformed",)),
        ("delta.mid", bytes([0xFF] * 6 + [0x7F, 0x90, 60, 1]), ("malformed", "delta time")),
        ("sysex.mid", bytes([0, 0xF0, 3, 0x7D, 0xFF, 0xF7]), ("malformed",)),
        ("meta_len.mid", bytes([0, 0xFF, 0x01, 0x83, 0xFF, 0xFF, 0x7F]), ("malformed",)),
    ],
)
def test_malformed_track_data(tmp_path, name, body, words):
    assert_load_error(fx.write_raw(tmp_path, name, [body]), *words)


@pytest.mark.parametrize(
    ("name", "header", "words"),
    [
        ("riff.mid", b"RIFF\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0", ("bad header",)),
        ("short_header.mid", b"MThd\x00\x00\x00\x06\x00", ("truncated", "header")),
        ("header_len.mid", b"MThd\x00\x00\x00\x02\x00\x00\x00\x01\x01\xe0", ("header length",)),
        ("format2.mid", b"MThd\x00\x00\x00\x06\x00\x02\x00\x01\x01\xe0", ("format 2",)),
        ("format9.mid", b"MThd\x00\x00\x00\x06\x00\x09\x00\x01\x01\xe0", ("unknown format 9",)),
        ("no_tracks.mid", b"MThd\x00\x00\x00\x06\x00\x00\x00\x00\x01\xe0", ("no tracks",)),
        ("division0.mid", b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x00", ("0 ticks per beat",)),
        ("smpte.mid", b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\xe5\x04", ("SMPTE",)),
        (
            "chunk.mid",
            b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0\x00\x01\x02\x03\xff\xff\xff\xff",
            ("no track chunk",),
        ),
    ],
)
def test_malformed_headers(tmp_path, name, header, words):
    path = tmp_path / name
    path.write_bytes(header)
    assert_load_error(path, *words)


def test_unknown_chunks_are_skipped_and_smpte_time_is_used(tmp_path):
    # 25 fps x 40 ticks per frame = 1000 ticks per second; tempo does not apply.
    body = bytes([0, 0xFF, 0x51, 3, 0x0F, 0x42, 0x40, 0, 0x90, 60, 100, 0x83, 0x74, 0x80, 60, 0])
    data = b"MThd" + struct.pack(">LHHBB", 6, 0, 1, 256 - 25, 40)
    data += b"XFIH" + struct.pack(">L", 3) + b"abc"
    data += b"MTrk" + struct.pack(">L", len(body)) + body
    path = tmp_path / "smpte.mid"
    path.write_bytes(data)
    assert timeline(load_midi_events(path)) == [(0.0, "90 3c 64"), (0.5, "80 3c 00")]


def test_sysex_system_and_events_after_end_of_track_are_dropped(tmp_path):
    body = bytes([0, 0xF0, 2, 0x7D, 0xF7, 0, 0x90, 60, 100, 0, 0xFF, 0x2F, 0, 0, 0x90, 62, 100])
    events = load_midi_events(fx.write_raw(tmp_path, "sysex.mid", [body]))
    assert timeline(events) == [(0.0, "90 3c 64")]


def test_a_file_name_with_a_newline_stays_one_line(tmp_path):
    with pytest.raises(MidiFileError) as info:
        load_midi_events(tmp_path / "a\nb.mid")
    assert "\n" not in str(info.value) and "a\\nb.mid: no such file" in str(info.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=st.binary(max_size=300), n_tracks=st.integers(0, 3), fmt=st.integers(0, 3))
def test_any_bytes_after_a_header_load_or_raise_midifileerror(tmp_path, tail, n_tracks, fmt):
    path = tmp_path / "fuzz.mid"
    path.write_bytes(b"MThd" + struct.pack(">LHHH", 6, fmt, n_tracks, 480) + tail)
    try:
        events = load_midi_events(path, require_notes=False)
    except MidiFileError as exc:
        assert "\n" not in str(exc)
    else:
        assert [e.t_s for e in events] == sorted(e.t_s for e in events)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_good_files_load_or_raise_midifileerror(tmp_path, data):
    good = bytearray(fx.write_chords_with_pedal(tmp_path).read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        good[data.draw(st.integers(0, len(good) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "flipped.mid"
    path.write_bytes(bytes(good))
    try:
        events = load_midi_events(path, require_notes=False)
    except MidiFileError:
        return
    for event in events:
        assert 0x80 <= event.data[0] < 0xF0
        assert all(b < 0x80 for b in event.data[1:])
        assert event.data[0] & 0xF0 != 0x90 or event.data[2] > 0


def test_fixtures_round_trip_through_mido(tmp_path):
    # Guard the fixtures themselves: mido reads them back with the same note count.
    path = fx.write_two_tracks(tmp_path)
    midi = mido.MidiFile(path)
    assert midi.type == 1 and len(midi.tracks) == 3
    assert sum(m.type == "note_on" for m in midi) == 6
