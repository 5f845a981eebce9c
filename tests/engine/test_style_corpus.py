"""engine.style.corpus: a performer's corpus in the user data dir: what it keeps of each file
(the performer's part of a recording, no drums, a cut-short file up to the cut) and the one-line
reasons it skips the rest (test_style_corpus_manage.py: an add that fails, names, list, remove)."""
from __future__ import annotations

import shutil
from pathlib import Path

import mido
import pytest

from engine.clock import FakeClock
from engine.events import control, note_off, note_on
from engine.midi.recorder import SessionRecorder
from engine.training.midi_files import read_notes
from engine.user_dirs import corpora_dir
from tests.engine.corpus_helpers import add, manifest_of, write_notes
from tests.engine.recordings import START_NS, at
from tests.midi_fixtures import (
    SCALE_PITCHES,
    write_chords_with_pedal,
    write_no_notes,
    write_scale,
    write_truncated,
    write_two_tracks,
)

pytestmark = pytest.mark.usefixtures("data_home")


# --- inputs --------------------------------------------------------------------------------

def write_drums(path: Path, *, piano: bool) -> Path:
    """Four hi-hats on channel 10 (index 9), and with `piano` three notes on channel 1."""
    notes = [(i * 0.5, i * 0.5 + 0.1, 42, 9) for i in range(4)]
    if piano:
        notes += [(0.0, 0.5, 60, 0), (0.5, 1.0, 64, 0), (1.0, 2.0, 67, 0)]
    return write_notes(path, notes)


def write_recording(directory: Path, name: str = "jam") -> Path:
    """A two-player recording by the project's recorder: the performer plays 60, 62 (pedal down
    at 0.75 s, up at 1.6 s) and holds 65 to the end; the AI answers 72 and 76."""
    clock = FakeClock(START_NS)
    rec = SessionRecorder(directory, clock, meta={"preset": "default"}, name=name)
    rec.start()
    rec.record("performer", note_on(at(clock, 0.0), 60, 100))
    rec.record("performer", note_off(at(clock, 0.5), 60))
    rec.record("ai", note_on(at(clock, 0.5), 72, 90, channel=1))
    rec.record("performer", note_on(at(clock, 0.5), 62, 90))
    rec.record("performer", control(at(clock, 0.75), 64, 127))
    rec.record("performer", note_off(at(clock, 1.0), 62))
    rec.record("ai", note_off(at(clock, 1.0), 72, channel=1))
    rec.record("ai", note_on(at(clock, 1.25), 76, 70, channel=1))
    rec.record("performer", control(at(clock, 1.5), 64, 0))
    rec.record("performer", note_on(at(clock, 1.5), 65, 80))  # still held when the jam ends
    at(clock, 2.0)
    return rec.close().midi_path


def cut(path: Path, n_bytes: int) -> Path:
    path.write_bytes(path.read_bytes()[:-n_bytes])
    return path


def stored_notes(corpus, source_name: str) -> list[tuple[float, float, int]]:
    entry = next(e for e in corpus.entries if Path(e["source"]).name == source_name)
    tracks = read_notes(corpus.path / "files" / entry["file"])
    return sorted((round(n.start_s, 3), round(n.end_s, 3), n.pitch) for track in tracks for n in track)


def stored_messages(corpus, source_name: str) -> list[mido.Message]:
    entry = next(e for e in corpus.entries if Path(e["source"]).name == source_name)
    return [msg for track in mido.MidiFile(corpus.path / "files" / entry["file"]).tracks for msg in track]


# --- adding --------------------------------------------------------------------------------

def test_a_folder_of_good_and_bad_files_adds_the_good_and_says_why_for_each_bad(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "jams").mkdir(parents=True)
    write_scale(inbox)
    write_chords_with_pedal(inbox)
    write_two_tracks(inbox)
    write_recording(inbox / "jams")
    write_drums(inbox / "drums.mid", piano=False)
    write_drums(inbox / "band.MIDI", piano=True)
    write_no_notes(inbox)
    (inbox / "notes.mid").write_text("C E G, then a pause\n")
    shutil.copy(inbox / "scale.mid", inbox / "scale copy.mid")
    write_truncated(inbox)
    (inbox / "readme.txt").write_text("not looked at: only .mid and .midi are searched in folders")

    result, skips, warnings = add("me", inbox)

    assert skips == {
        "drums.mid": "drums only (channel 10)",
        "no_notes.mid": "contains no notes",
        "notes.mid": "not a MIDI file (bad header)",
        "scale.mid": f"duplicate of {inbox / 'scale copy.mid'} (given earlier; sha256 "
                     f"{next(e['sha256'] for e in result.added if e['source'].endswith('scale copy.mid'))[:12]})",
    }
    assert warnings == {
        "band.MIDI": ["ignored 4 drum notes on channel 10"],
        "truncated.mid": ["truncated MIDI file (track 1 ends early): kept the notes up to 1.75 s"],
    }
    assert sorted(Path(e["source"]).name for e in result.added) == [
        "band.MIDI", "chords.mid", "hands.mid", "jam.mid", "scale copy.mid", "truncated.mid"]
    assert [(p.name, why) for p, why in result.skipped] == sorted(skips.items())
    manifest = manifest_of("me")
    assert manifest["name"] == "me" and manifest["format"] == 1
    assert manifest["files"] == list(result.added)
    files = sorted(p.name for p in (corpora_dir() / "me" / "files").iterdir())
    assert files == sorted(e["file"] for e in manifest["files"])
    for entry in manifest["files"]:
        assert entry["file"] == entry["sha256"][:16] + ".mid"
        assert Path(entry["source"]).is_absolute() and Path(entry["source"]).exists()
        assert entry["split"] in ("train", "val")
        assert entry["kind"] == ("recording" if entry["source"].endswith("jam.mid") else "midi")
        assert entry["added"][:2] == "20"


def test_the_entry_describes_the_file(tmp_path: Path) -> None:
    result, skips, warnings = add("me", write_scale(tmp_path))
    assert (skips, warnings) == ({}, {})
    (entry,) = result.added
    assert {k: v for k, v in entry.items() if k not in ("sha256", "file", "added")} == {
        "source": str(tmp_path / "scale.mid"), "kind": "midi", "duration_s": 2.0, "playing_s": 2.0, "n_notes": 8,
        "pitch_range": [60, 72], "tempo_bpm": 120.0, "split": "train", "warnings": []}
    # The stored file reads back through the pre-training reader with the source's notes.
    assert stored_notes(result.corpus, "scale.mid") == [
        (i * 0.25, (i + 1) * 0.25, pitch) for i, pitch in enumerate(SCALE_PITCHES[:8])]


def test_a_recording_gives_only_the_performers_part_with_its_pedal(tmp_path: Path) -> None:
    recording = write_recording(tmp_path)
    assert recording.with_suffix(".json").exists()  # the recorder's sidecar is not needed to tell
    result, skips, warnings = add("me", recording)
    assert (skips, warnings) == ({}, {})
    (entry,) = result.added
    assert entry["kind"] == "recording" and entry["n_notes"] == 3 and entry["pitch_range"] == [60, 65]
    # 62 is released under the pedal at 1.0 s and rings until it comes up at 1.5 s; 65, held
    # when the jam ended, ends with it.
    assert stored_notes(result.corpus, "jam.mid") == [(0.0, 0.5, 60), (0.5, 1.5, 62), (1.5, 2.0, 65)]
    pedal = [(msg.value) for msg in stored_messages(result.corpus, "jam.mid")
             if msg.type == "control_change" and msg.control == 64]
    assert pedal == [127, 0]


def test_a_recording_whose_performer_did_not_play_is_skipped(tmp_path: Path) -> None:
    clock = FakeClock(START_NS)
    rec = SessionRecorder(tmp_path, clock, name="ai-alone")
    rec.start()
    rec.record("ai", note_on(at(clock, 0.0), 72, 90, channel=1))
    rec.record("ai", note_off(at(clock, 0.5), 72, channel=1))
    path = rec.close().midi_path
    result, skips, _ = add("me", path)
    assert skips == {"ai-alone.mid": "no notes in the performer's track"}
    assert result.added == () and result.corpus is None
    assert not (corpora_dir() / "me").exists()


def test_drums_are_dropped_from_what_is_kept(tmp_path: Path) -> None:
    result, _, warnings = add("me", write_drums(tmp_path / "band.mid", piano=True))
    assert warnings == {"band.mid": ["ignored 4 drum notes on channel 10"]}
    assert stored_notes(result.corpus, "band.mid") == [(0.0, 0.5, 60), (0.5, 1.0, 64), (1.0, 2.0, 67)]
    assert not [m for m in stored_messages(result.corpus, "band.mid") if not m.is_meta and m.channel == 9]


def test_a_file_cut_short_keeps_the_notes_before_the_cut(tmp_path: Path) -> None:
    # 10 bytes short: the end of track, the last note-off and the end of the last note-on.
    path = cut(write_scale(tmp_path, name="cut.mid"), 10)
    result, skips, warnings = add("me", path)
    assert skips == {}
    assert warnings == {"cut.mid": ["truncated MIDI file (track 1 ends early): kept the notes up to 1.75 s"]}
    assert stored_notes(result.corpus, "cut.mid") == [
        (i * 0.25, (i + 1) * 0.25, pitch) for i, pitch in enumerate(SCALE_PITCHES[:7])]
    assert result.added[0]["warnings"] == warnings["cut.mid"]


def test_a_recording_cut_in_the_ais_track_keeps_the_whole_performer(tmp_path: Path) -> None:
    path = cut(write_recording(tmp_path), 6)
    result, skips, warnings = add("me", path)
    assert skips == {}
    assert warnings == {"jam.mid": ["truncated MIDI file (track 2 ends early): kept the notes up to 2.00 s"]}
    assert result.added[0]["kind"] == "recording"
    assert stored_notes(result.corpus, "jam.mid") == [(0.0, 0.5, 60), (0.5, 1.5, 62), (1.5, 2.0, 65)]


def test_a_file_cut_inside_a_held_note_ends_it_at_the_cut(tmp_path: Path) -> None:
    # 64 sounds from 1 s to 3 s; 7 bytes short, the file loses its end and 64's note-off but
    # for the note-off's delta time, so 64 is still held at the last whole event (2.5 s).
    path = write_notes(tmp_path / "held.mid", [(0.0, 1.0, 60, 0), (1.0, 3.0, 64, 0), (2.0, 2.5, 67, 0)])
    result, skips, warnings = add("me", cut(path, 7))
    assert skips == {}
    assert warnings == {"held.mid": ["truncated MIDI file (track 1 ends early): kept the notes up to 2.50 s"]}
    assert stored_notes(result.corpus, "held.mid") == [(0.0, 1.0, 60), (1.0, 2.5, 64), (2.0, 2.5, 67)]
    messages = stored_messages(result.corpus, "held.mid")
    ons = sum(1 for m in messages if m.type == "note_on" and m.velocity)
    offs = sum(1 for m in messages if m.type == "note_off" or (m.type == "note_on" and not m.velocity))
    assert (ons, offs) == (3, 3)  # no note is left sounding in the stored file


def test_files_that_cannot_be_used_each_say_why(tmp_path: Path) -> None:
    (tmp_path / "empty.mid").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("no midi here")
    header_only = write_scale(tmp_path, name="header.mid")
    header_only.write_bytes(header_only.read_bytes()[:14])
    _, skips, _ = add("me", tmp_path / "empty.mid", tmp_path / "missing.mid", tmp_path / "sub", header_only,
                      write_scale(tmp_path, name="good.mid"))
    assert skips == {
        "empty.mid": "empty file (0 bytes)",
        "missing.mid": "no such file or folder",
        "sub": "folder holds no .mid or .midi files",
        "header.mid": "truncated MIDI file (header says 1 track, found 0)",
    }


def test_a_file_already_in_the_corpus_is_a_duplicate(tmp_path: Path) -> None:
    first, _, _ = add("me", write_scale(tmp_path))
    shutil.copy(tmp_path / "scale.mid", tmp_path / "again.mid")
    second, skips, _ = add("me", tmp_path / "again.mid", write_chords_with_pedal(tmp_path))
    sha = first.added[0]["sha256"]
    assert skips == {"again.mid": f"duplicate of {tmp_path / 'scale.mid'} (already in corpus me; sha256 {sha[:12]})"}
    assert [Path(e["source"]).name for e in second.added] == ["chords.mid"]
    assert len(manifest_of("me")["files"]) == 2


def test_the_same_music_in_a_recording_and_a_file_is_a_duplicate(tmp_path: Path) -> None:
    """The hash is of what is kept: the performer's part, whoever the AI was."""
    write_recording(tmp_path, name="take")
    midi = mido.MidiFile(tmp_path / "take.mid")
    midi.tracks[1] = mido.MidiTrack([mido.MetaMessage("track_name", name="ai")])  # the AI played nothing
    midi.save(tmp_path / "quiet-ai.mid")
    _, skips, _ = add("me", tmp_path / "take.mid", tmp_path / "quiet-ai.mid")
    assert skips["quiet-ai.mid"].startswith(f"duplicate of {tmp_path / 'take.mid'}")
