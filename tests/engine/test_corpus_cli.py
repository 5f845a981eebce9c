"""`jamtui corpus add|list|show|remove` through `jamtui.cli.main`: one line on stderr per file
skipped or warned about, a summary, the figures, and one-line errors with exit status 2."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import mido
import pytest

from engine.clock import FakeClock
from engine.events import note_off, note_on
from engine.midi.recorder import SessionRecorder
from engine.user_dirs import corpora_dir
from jamtui.cli import main
from tests.engine.recordings import START_NS, at
from tests.midi_fixtures import (
    write_no_notes,
    write_scale,
    write_truncated,
    write_two_tracks,
)

pytestmark = pytest.mark.usefixtures("data_home")


def run(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    """Exit status, stdout lines, stderr lines."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def write_drums(path: Path, *, piano: bool) -> Path:
    """Hi-hats on channel 10 (index 9) every 0.5 s for 2 s; with `piano` a C on channel 1 too."""
    track = mido.MidiTrack()
    for _ in range(4):
        track.append(mido.Message("note_on", channel=9, note=42, velocity=90, time=0))
        track.append(mido.Message("note_off", channel=9, note=42, time=240))
        if piano:
            track.append(mido.Message("note_on", channel=0, note=60, velocity=70, time=0))
            track.append(mido.Message("note_off", channel=0, note=60, time=240))
        else:
            track.append(mido.MetaMessage("text", text="rest", time=240))
    mido.MidiFile(type=0, ticks_per_beat=480, tracks=[track]).save(path)
    return path


def write_jam(directory: Path) -> Path:
    """A recording by the project's recorder: the performer plays 60 then 64, the AI 72."""
    clock = FakeClock(START_NS)
    rec = SessionRecorder(directory, clock, name="jam")
    rec.start()
    rec.record("performer", note_on(at(clock, 0.0), 60, 100))
    rec.record("ai", note_on(at(clock, 0.25), 72, 90, channel=1))
    rec.record("performer", note_off(at(clock, 0.5), 60))
    rec.record("performer", note_on(at(clock, 0.5), 64, 90))
    rec.record("ai", note_off(at(clock, 0.75), 72, channel=1))
    rec.record("performer", note_off(at(clock, 1.0), 64))
    at(clock, 1.0)
    return rec.close().midi_path


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """Four usable files (a scale, two hands, a jam, piano with drums), one cut short, and five
    that cannot be used: drums only, no notes, not MIDI, empty, and a copy of the scale."""
    folder = tmp_path / "inbox"
    (folder / "jams").mkdir(parents=True)
    write_scale(folder, name="a-scale.mid")
    shutil.copy(folder / "a-scale.mid", folder / "b-copy.mid")
    write_two_tracks(folder)
    write_jam(folder / "jams")
    write_drums(folder / "band.mid", piano=True)
    write_drums(folder / "drums.mid", piano=False)
    write_no_notes(folder)
    write_truncated(folder)
    (folder / "text.mid").write_text("MIDI? no, text")
    (folder / "zero.midi").write_bytes(b"")
    return folder


def test_add_prints_one_line_per_file_it_skips_or_warns_about_then_a_summary(capsys, inbox: Path) -> None:
    code, out, err = run(capsys, "corpus", "add", "me", str(inbox))
    assert code == 0
    assert err == [
        (f"jamtui corpus: skipped {inbox / 'b-copy.mid'}: duplicate of {inbox / 'a-scale.mid'} (given earlier; "
         f"sha256 {_sha_of('me', 'a-scale.mid')[:12]})"),
        f"jamtui corpus: warning: {inbox / 'band.mid'}: ignored 4 drum notes on channel 10",
        f"jamtui corpus: skipped {inbox / 'drums.mid'}: drums only (channel 10)",
        f"jamtui corpus: skipped {inbox / 'no_notes.mid'}: contains no notes",
        f"jamtui corpus: skipped {inbox / 'text.mid'}: not a MIDI file (bad header)",
        (f"jamtui corpus: warning: {inbox / 'truncated.mid'}: truncated MIDI file (track 1 ends early): "
         "kept the notes up to 1.75 s"),
        f"jamtui corpus: skipped {inbox / 'zero.midi'}: empty file (0 bytes)",
    ]
    # 8 + 4 + 6 + 2 + 7 notes in 2 + 2 + 3 + 1 + 1.75 s
    assert len(out) == 1
    assert out[0].startswith("corpus me: added 5 files (9.8 s, 27 notes), skipped 5; now 5 files, 9.8 s, 27 notes (")
    manifest = json.loads((corpora_dir() / "me" / "manifest.json").read_text())
    assert sorted(Path(e["source"]).name for e in manifest["files"]) == [
        "a-scale.mid", "band.mid", "hands.mid", "jam.mid", "truncated.mid"]
    splits = [e["split"] for e in manifest["files"]]
    assert out[0].endswith(f"({splits.count('train')} train, {splits.count('val')} val)")
    assert splits.count("val") >= 1


def _sha_of(name: str, source_name: str) -> str:
    manifest = json.loads((corpora_dir() / name / "manifest.json").read_text())
    return next(e["sha256"] for e in manifest["files"] if Path(e["source"]).name == source_name)


def test_adding_more_later_keeps_the_earlier_splits(capsys, inbox: Path, tmp_path: Path) -> None:
    run(capsys, "corpus", "add", "me", str(inbox / "a-scale.mid"), str(inbox / "hands.mid"))
    before = json.loads((corpora_dir() / "me" / "manifest.json").read_text())["files"]
    code, out, err = run(capsys, "corpus", "add", "me", str(inbox))
    assert code == 0
    assert f"jamtui corpus: skipped {inbox / 'a-scale.mid'}: duplicate of {inbox / 'a-scale.mid'} " \
           f"(already in corpus me; sha256 {_sha_of('me', 'a-scale.mid')[:12]})" in err
    assert out[0].startswith("corpus me: added 3 files")
    after = json.loads((corpora_dir() / "me" / "manifest.json").read_text())["files"]
    assert after[:2] == before


@pytest.mark.parametrize("name", [".secret", "a/b", "two words"])
def test_an_invalid_name_is_one_line_and_exit_2(capsys, inbox: Path, name: str) -> None:
    code, out, err = run(capsys, "corpus", "add", name, str(inbox))
    assert (code, out) == (2, [])
    assert err == [(f"jamtui: error: invalid corpus name {name!r}: use letters, digits, '-', '_' and '.', "
                   "not starting with '.' (at most 100 characters)")]
    assert not corpora_dir().exists()


def test_no_usable_file_is_exit_2_after_the_reasons(capsys, inbox: Path, tmp_path: Path) -> None:
    code, out, err = run(capsys, "corpus", "add", "me", str(inbox / "drums.mid"), str(tmp_path / "nothing"))
    assert (code, out) == (2, [])
    assert err == [
        f"jamtui corpus: skipped {inbox / 'drums.mid'}: drums only (channel 10)",
        f"jamtui corpus: skipped {tmp_path / 'nothing'}: no such file or folder",
        "jamtui: error: corpus me: no usable MIDI file among those given (2 skipped, nothing added)",
    ]
    assert not (corpora_dir() / "me").exists()


def test_list_shows_each_corpus(capsys, inbox: Path) -> None:
    assert run(capsys, "corpus", "list") == (0, ["no corpora yet: `jamtui corpus add NAME PATH...` makes one"], [])
    run(capsys, "corpus", "add", "me", str(inbox / "a-scale.mid"), str(inbox / "hands.mid"))
    run(capsys, "corpus", "add", "jazz-2024", str(inbox / "jams"))
    (corpora_dir() / "broken").mkdir()
    (corpora_dir() / "broken" / "manifest.json").write_text("[]")
    code, out, err = run(capsys, "corpus", "list")
    assert (code, err) == (0, [])
    assert [line.split()[:4] for line in out] == [
        ["corpus", "files", "hours", "notes"],
        ["broken", "-", "-", "broken:"],
        ["jazz-2024", "1", "0.00", "2"],
        ["me", "2", "0.00", "14"],
    ]


def test_show_prints_the_figures_and_the_files(capsys, inbox: Path) -> None:
    run(capsys, "corpus", "add", "me", str(inbox / "a-scale.mid"), str(inbox / "jams"), str(inbox / "truncated.mid"))
    code, out, err = run(capsys, "corpus", "show", "me")
    assert (code, err) == (0, [])
    text = "\n".join(out)
    assert out[0] == f"corpus me  {corpora_dir() / 'me'}"
    manifest = json.loads((corpora_dir() / "me" / "manifest.json").read_text())
    splits = [e["split"] for e in manifest["files"]]
    assert f"  files    3 ({splits.count('train')} train, {splits.count('val')} val)" in out
    assert "  hours    0.001 (4.8 s)" in out
    assert "  notes    17" in out
    assert "  pitch    C4-C5 (60-72)" in out
    assert "  tempo    120 bpm (pulse estimate: the median over files of the beat most onset pairs fit)" in out
    # 17 notes in 2 + 1 + 1.75 s of playing
    assert f"  density  {round(17 / 4.75, 2):g} notes/s (while playing: silences of 2 s or more left out)" in out
    for entry in manifest["files"]:
        line = next(line for line in out if entry["source"] in line)
        assert line.split()[:2] == [entry["split"], entry["sha256"][:12]]
        assert f"{entry['n_notes']} notes" in line
    assert "(recording: performer's part)" in next(line for line in out if line.endswith("jam.mid  (recording: "
                                                                                          "performer's part)"))
    assert "[warning: truncated MIDI file (track 1 ends early): kept the notes up to 1.75 s]" in text


def test_show_json_is_one_object(capsys, inbox: Path) -> None:
    run(capsys, "corpus", "add", "me", str(inbox / "a-scale.mid"), str(inbox / "hands.mid"))
    code, out, err = run(capsys, "corpus", "show", "me", "--json")
    assert (code, err, len(out)) == (0, [], 1)
    shown = json.loads(out[0])
    assert (shown["name"], shown["n_files"], shown["n_notes"], shown["pitch_range"]) == ("me", 2, 14, [43, 77])
    assert shown["splits"]["train"]["n_files"] + shown["splits"]["val"]["n_files"] == 2
    assert [Path(f["source"]).name for f in shown["files"]] == ["a-scale.mid", "hands.mid"]
    assert set(shown["files"][0]) >= {"sha256", "source", "file", "duration_s", "n_notes", "split", "warnings"}


def test_remove_a_file_then_the_corpus(capsys, inbox: Path) -> None:
    run(capsys, "corpus", "add", "me", str(inbox / "a-scale.mid"), str(inbox / "hands.mid"))
    sha = _sha_of("me", "hands.mid")
    assert run(capsys, "corpus", "remove", "me", sha[:8]) == (
        0, [f"removed {inbox / 'hands.mid'} ({sha[:12]}) from corpus me"], [])
    assert run(capsys, "corpus", "show", "me", "--json")[1][0].count('"sha256"') == 1
    assert run(capsys, "corpus", "remove", "me") == (0, ["removed corpus me (1 file)"], [])
    assert run(capsys, "corpus", "list")[1] == ["no corpora yet: `jamtui corpus add NAME PATH...` makes one"]


@pytest.mark.parametrize("argv, message", [
    (("show", "nobody"), "no corpus named nobody (`jamtui corpus list` shows yours)"),
    (("remove", "nobody"), "no corpus named nobody (`jamtui corpus list` shows yours)"),
    (("remove", "nobody", "x.mid"), "no corpus named nobody (`jamtui corpus list` shows yours)"),
    (("remove", "me", "x.mid"), ("corpus me has no file 'x.mid' (give a source path, a stored file name or a hash "
                                 "prefix; `jamtui corpus show me` lists them)")),
    (("show", ".me"), ("invalid corpus name '.me': use letters, digits, '-', '_' and '.', not starting with '.' "
                       "(at most 100 characters)")),
])
def test_unknown_names_are_one_line_and_exit_2(capsys, inbox: Path, argv, message) -> None:
    run(capsys, "corpus", "add", "me", str(inbox / "a-scale.mid"))
    assert run(capsys, "corpus", *argv) == (2, [], [f"jamtui: error: {message}"])


def test_a_broken_corpus_is_one_line_and_exit_2(capsys, inbox: Path) -> None:
    run(capsys, "corpus", "add", "me", str(inbox / "a-scale.mid"))
    for stored in (corpora_dir() / "me" / "files").iterdir():
        stored.unlink()
    code, out, err = run(capsys, "corpus", "show", "me")
    assert (code, out, len(err)) == (2, [], 1)
    assert err[0].startswith("jamtui: error: corpus me is broken: files/")
