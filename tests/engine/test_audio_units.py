"""The audio extra's parts on their own: scoring, the transcription's MIDI file, decoding errors,
and the one-line errors when the extra is not installed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest

from engine.audio.transcribe import Pedal, Transcription, write_transcription
from engine.events import Note
from engine.training.midi_files import read_notes
from tests.engine.audio_pieces import need

ROOT = Path(__file__).resolve().parents[2]


def _notes(*starts: float, pitch: int = 60, length_s: float = 0.2, velocity: int = 80) -> list[Note]:
    return [Note(s, s + length_s, pitch + i, velocity) for i, s in enumerate(starts)]


def test_scores_count_onsets_within_50_ms_and_offsets_and_velocities_apart() -> None:
    need("mir_eval", "scipy")
    from engine.audio.accuracy import score_notes

    reference = _notes(0.0, 1.0, 2.0, 3.0)
    assert score_notes(reference, reference).onset_f1 == 1.0
    assert score_notes(reference, reference).onset_offset_f1 == 1.0
    shifted = [Note(n.start_s + d, n.end_s + d, n.pitch, n.velocity) for n, d in zip(reference, (0.04, 0.04, 0.06, 0.06))]
    assert score_notes(reference, shifted).onset_f1 == pytest.approx(0.5)  # two of four within 50 ms
    long = [Note(n.start_s, n.end_s + 0.5, n.pitch, n.velocity) for n in reference]
    scores = score_notes(reference, long)
    assert (scores.onset_f1, scores.onset_offset_f1) == (1.0, 0.0)
    # velocities are compared after the best linear rescaling: a constant factor costs nothing, noise does
    louder = [Note(n.start_s, n.end_s, n.pitch, v) for n, v in zip(reference, (40, 60, 80, 100))]
    assert score_notes(louder, [Note(n.start_s, n.end_s, n.pitch, v // 2) for n, v in
                                zip(reference, (40, 60, 80, 100))]).velocity_f1 == 1.0
    assert score_notes(louder, [Note(n.start_s, n.end_s, n.pitch, v) for n, v in
                                zip(reference, (100, 20, 110, 30))]).velocity_f1 < 0.6
    assert score_notes(reference, []).onset_f1 == 0.0


def test_a_transcription_is_written_with_its_pedal_and_read_back_with_the_pedal_folded_in(tmp_path: Path) -> None:
    notes = (Note(0.5, 0.7, 60, 70), Note(1.0, 1.2, 64, 90), Note(1.0, 1.1, 67, 100))
    pedals = (Pedal(64, 0.9, 2.5), Pedal(67, 3.0, 3.5))
    path = tmp_path / "t.mid"
    write_transcription(path, Transcription("t.wav", 4.0, notes, pedals, "test", 1.0))
    midi = mido.MidiFile(path)
    assert midi.type == 0 and [m.name for m in midi.tracks[0] if m.type == "track_name"] == ["piano"]
    controls = [(m.control, m.value) for m in midi.tracks[0] if m.type == "control_change"]
    assert controls == [(64, 127), (64, 0), (67, 127), (67, 0)]
    assert midi.length == pytest.approx(4.0)
    read = read_notes(path)[0]
    assert [(n.pitch, n.velocity) for n in read] == [(60, 70), (64, 90), (67, 100)]
    assert [round(n.end_s, 3) for n in read] == [0.7, 2.5, 2.5]  # released under the pedal: to its lift


def test_decoding_errors_are_one_line_naming_the_file(tmp_path: Path) -> None:
    need("soundfile", "scipy")
    from engine.audio.decode import AudioFileError, read_audio

    for path, reason in ((tmp_path / "none.wav", "no such file"), (tmp_path, "is a directory")):
        with pytest.raises(AudioFileError) as caught:
            read_audio(path, 44100)
        assert str(caught.value) == f"{path}: {reason}"
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(AudioFileError, match=r"empty\.flac: empty file \(0 bytes\)$"):
        read_audio(empty, 44100)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(AudioFileError) as caught:
        read_audio(junk, 44100)
    assert str(caught.value).startswith(f"{junk}: cannot decode (") and "\n" not in str(caught.value)


def test_audio_is_mixed_to_two_channels_at_most_and_resampled(tmp_path: Path) -> None:
    need("soundfile", "scipy")
    import soundfile

    from engine.audio.decode import read_audio

    t = np.arange(22050) / 22050
    four = np.stack([np.sin(2 * np.pi * 440 * t)] * 4, axis=1).astype(np.float32) * 0.5
    soundfile.write(tmp_path / "four.wav", four, 22050)
    samples = read_audio(tmp_path / "four.wav", 44100)
    assert samples.shape == (44100, 2) and samples.dtype == np.float32
    assert float(np.abs(samples[1000:-1000]).max()) == pytest.approx(0.5, abs=0.02)


def _run_without(blocked: str, *argv: str) -> subprocess.CompletedProcess:
    """`jamtui ARGV...` in a child process where importing `blocked` fails, as when it is not installed."""
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"
            f"from jamtui.cli import main; sys.exit(main({list(argv)!r}))")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_transcribe_without_the_extra_says_exactly_how_to_install_it(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    done = _run_without("transkun", "transcribe", str(wav), "--out", str(tmp_path / "out"), "--device", "cpu")
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("jamtui: error: transcription needs the audio extra (transkun.ModelTransformer is missing: ")
    assert line.endswith("); install it with make setup-audio (or: pip install 'jamtui[audio]' && "
                         "pip install --no-deps transkun==2.0.1)")


def test_render_without_pyfluidsynth_says_how_to_install_it(tmp_path: Path) -> None:
    mid = tmp_path / "a.mid"
    mido.MidiFile(tracks=[mido.MidiTrack([mido.Message("note_on", note=60, velocity=90),
                                          mido.Message("note_off", note=60, time=480)])]).save(mid)
    done = _run_without("fluidsynth", "render", str(mid), "--out", str(tmp_path / "a.wav"),
                        "--soundfont", str(mid))  # any existing file: the synth is missing first
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "jamtui: error: rendering needs pyfluidsynth: install the audio extra with make setup-audio (or: pip "
        "install 'jamtui[audio]' && pip install --no-deps transkun==2.0.1)"]
    assert not (tmp_path / "a.wav").exists()


def test_the_audio_bench_script_starts() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "audio-bench"), "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_mp3_is_read_where_the_installed_libsndfile_decodes_it(tmp_path: Path) -> None:
    need("soundfile", "scipy")
    import soundfile

    from engine.audio.decode import read_audio

    if "MP3" not in soundfile.available_formats():
        pytest.skip(f"libsndfile {soundfile.__libsndfile_version__} has no MP3 codec")
    t = np.arange(44100) / 44100
    soundfile.write(tmp_path / "a.mp3", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
    samples = read_audio(tmp_path / "a.mp3", 44100)
    assert samples.shape[1] == 1 and abs(samples.shape[0] - 44100) < 2000
    assert float(np.abs(samples).max()) == pytest.approx(0.3, abs=0.05)
