"""`jamtui transcribe` and audio in `jamtui corpus add`: a piece written by the test, rendered with
the piano soundfont, transcribed back by the piano model and scored against its source."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import mido
import pytest

from engine.audio.accuracy import score_files
from engine.audio.render import Layout, find_soundfont, render_midi
from engine.training.midi_files import read_notes
from jamtui.cli import main
from tests.engine.audio_pieces import CHORD, PEDAL, SCALE, need, write_piece


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[Path, Path]:
    """(the piece's MIDI file, its rendering as a WAV file)."""
    need("soundfile", "fluidsynth", "scipy", "mir_eval", "transkun", soundfont=True)
    folder = tmp_path_factory.mktemp("recording")
    piece = write_piece(folder / "piece.mid")
    wav = folder / "piece.wav"
    render_midi(piece, wav, soundfont=find_soundfont(), layout=Layout.MIX)
    return piece, wav


@pytest.fixture(scope="module")
def transcribed(recording, tmp_path_factory) -> tuple[Path, list[str], list[str], int]:
    """`jamtui transcribe` run once on the recording, a file that is no audio and a missing one:
    (the output folder, stdout lines, stderr lines, exit status)."""
    _piece, wav = recording
    folder = tmp_path_factory.mktemp("transcribe")
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    out = folder / "out"
    capture = pytest.MonkeyPatch()
    import io
    import sys

    stdout, stderr = io.StringIO(), io.StringIO()
    capture.setattr(sys, "stdout", stdout)
    capture.setattr(sys, "stderr", stderr)
    try:
        code = main(["transcribe", str(broken), str(wav), str(folder / "missing.flac"), "--out", str(out),
                     "--device", "cpu"])
    finally:
        capture.undo()
    return out, stdout.getvalue().splitlines(), stderr.getvalue().splitlines(), code


def test_transcribe_writes_one_midi_file_per_recording_and_says_so(transcribed, recording) -> None:
    out, lines, errors, code = transcribed
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["piece.mid"]
    assert len(lines) == 1 and lines[0].startswith(f"{recording[1]} -> {out / 'piece.mid'}: ")
    assert "x real time)" in lines[0]


def test_a_file_that_cannot_be_decoded_gets_one_line_and_the_rest_go_on(transcribed) -> None:
    out, _lines, errors, _code = transcribed
    assert len(errors) == 2, errors
    missing, broken = errors  # the paths are checked before the first recording is decoded
    assert missing == f"jamtui transcribe: skipped {out.parent / 'missing.flac'}: no such file or folder"
    assert broken.startswith(f"jamtui transcribe: skipped {out.parent / 'broken.wav'}: cannot decode (")


def test_the_transcription_matches_its_source(transcribed, recording) -> None:
    out, _lines, _errors, _code = transcribed
    accuracy = score_files(recording[0], out / "piece.mid")
    assert accuracy.n_reference == len(SCALE) + len(CHORD)
    assert accuracy.onset_f1 >= 0.9, accuracy


def test_the_transcription_keeps_the_sustain_pedal_as_cc64(transcribed) -> None:
    out, _lines, _errors, _code = transcribed
    midi = mido.MidiFile(out / "piece.mid")
    pedal = [msg.value for msg in midi.tracks[0] if msg.type == "control_change" and msg.control == 64]
    notes = {n.pitch: n for n in read_notes(out / "piece.mid")[0] if n.start_s > 3.5}
    # the model hears the chord ring past its keys' release at 4.3 s: as a pedal press, or in the note
    # ends; either way the corpus (read_notes folds CC64 in) gets notes that sound until the pedal lifts
    assert pedal == [] or (pedal[0] >= 64 and pedal[-1] < 64)
    for pitch in (48, 55, 64):
        assert notes[pitch].end_s == pytest.approx(PEDAL[1], abs=0.3), (pitch, pedal, notes[pitch])


def test_corpus_add_takes_a_recording_and_notes_that_it_was_audio(recording, data_home: Path, tmp_path: Path,
                                                                   capsys) -> None:
    piece, wav = recording
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(wav, inbox / "take.wav")
    shutil.copy(piece, inbox / "score.mid")
    (inbox / "noise.flac").write_bytes(b"fLaC but nothing more")
    assert main(["corpus", "add", "mine", str(inbox)]) == 0
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [f"jamtui corpus: skipped {inbox / 'noise.flac'}: cannot decode ("
                                        + err.split("cannot decode (", 1)[1].strip()]
    assert "added 2 files" in out
    assert main(["corpus", "show", "mine", "--json"]) == 0
    files = {Path(e["source"]).name: e for e in json.loads(capsys.readouterr().out)["files"]}
    assert files["take.wav"]["kind"] == "audio" and files["take.wav"]["transcribed_with"] == "transkun 2.0"
    assert files["score.mid"]["kind"] == "midi" and "transcribed_with" not in files["score.mid"]
    assert files["take.wav"]["n_notes"] == pytest.approx(len(SCALE) + len(CHORD), abs=1)
