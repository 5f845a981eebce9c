"""`jamtui render` and engine.audio.render: MIDI files and duets to audio through FluidSynth."""
from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest

from engine.events import AI, PERFORMER, Note
from engine.midi.midifile import write_duet
from jamtui.cli import main
from tests.engine.audio_pieces import PIECE_END_S, need, write_piece


@pytest.fixture(autouse=True)
def _extra() -> None:
    need("soundfile", "fluidsynth", soundfont=True)


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    return soundfile.read(path, dtype="float32", always_2d=True)


def _loud(samples: np.ndarray, start_s: float, end_s: float, rate: int) -> float:
    return float(np.sqrt(np.mean(samples[int(start_s * rate):int(end_s * rate)] ** 2)))


def test_a_duet_renders_with_the_performer_left_and_the_ai_right(tmp_path: Path, capsys) -> None:
    duet = tmp_path / "duet.mid"
    # the performer plays 0-1 s, the AI 2-3 s
    write_duet(duet, [Note(0.0, 1.0, 60, 90, PERFORMER), Note(2.0, 3.0, 67, 90, AI)])
    out = tmp_path / "duet.wav"
    assert main(["render", str(duet), "--out", str(out)]) == 0
    assert "performer left, AI right" in capsys.readouterr().out
    samples, rate = _read(out)
    assert rate == 44100 and samples.shape[1] == 2
    left_while_performer, right_while_performer = (_loud(samples[:, i:i + 1], 0.1, 0.9, rate) for i in (0, 1))
    left_while_ai, right_while_ai = (_loud(samples[:, i:i + 1], 2.1, 2.9, rate) for i in (0, 1))
    assert left_while_performer > 0.01 and right_while_ai > 0.01
    assert right_while_performer < left_while_performer / 20  # apart, not panned halfway
    assert left_while_ai < right_while_ai / 20 + 0.002  # the performer's note may still ring a little
    assert float(np.abs(samples).max()) == pytest.approx(0.89, abs=0.01)


def test_mix_puts_both_players_on_both_sides(tmp_path: Path) -> None:
    duet = tmp_path / "duet.mid"
    write_duet(duet, [Note(0.0, 1.0, 60, 90, PERFORMER), Note(2.0, 3.0, 67, 90, AI)])
    out = tmp_path / "duet.flac"
    assert main(["render", str(duet), "--out", str(out), "--mix"]) == 0
    samples, rate = _read(out)
    for start, end in ((0.1, 0.9), (2.1, 2.9)):
        left, right = (_loud(samples[:, i:i + 1], start, end, rate) for i in (0, 1))
        assert left > 0.01 and right > 0.01


def test_a_one_player_file_follows_its_notes_and_pedal(tmp_path: Path) -> None:
    piece = write_piece(tmp_path / "piece.mid")
    out = tmp_path / "piece.wav"
    assert main(["render", str(piece), "--out", str(out)]) == 0
    samples, rate = _read(out)
    assert samples.shape[0] == pytest.approx((PIECE_END_S + 2.0) * rate, abs=rate * 0.05)
    assert _loud(samples, 0.0, 0.45, rate) < 1e-3  # silence before the first note at 0.5 s
    # the chord's keys come up at 4.3 s but the pedal holds it until 5.6 s
    assert _loud(samples, 5.0, 5.5, rate) > 0.2 * _loud(samples, 4.1, 4.5, rate)
    assert _loud(samples, 6.8, 7.5, rate) < 0.05 * _loud(samples, 4.1, 4.5, rate)


def test_a_missing_soundfont_is_one_line_naming_the_file(tmp_path: Path, capsys) -> None:
    piece = write_piece(tmp_path / "piece.mid")
    code = main(["render", str(piece), "--out", str(tmp_path / "x.wav"), "--soundfont", str(tmp_path / "none.sf2")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"jamtui: error: --soundfont: {tmp_path / 'none.sf2'}: no such file"]
    assert not (tmp_path / "x.wav").exists()


def test_a_broken_midi_file_is_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    assert main(["render", str(bad), "--out", str(tmp_path / "x.wav")]) == 2
    assert capsys.readouterr().err.strip() == f"jamtui: error: {bad}: not a MIDI file (bad header)"


def test_without_a_soundfont_installed_the_error_says_what_to_install(monkeypatch, tmp_path: Path) -> None:
    from engine.audio import render

    monkeypatch.setattr(render, "SOUNDFONT_PLACES", (str(tmp_path / "nowhere.sf2"),))
    with pytest.raises(render.RenderError, match=r"apt-get install fluidsynth fluid-soundfont-gm"):
        render.find_soundfont()


def test_a_file_with_only_drums_renders_silence_of_its_length(tmp_path: Path) -> None:
    drums = tmp_path / "drums.mid"
    track = mido.MidiTrack([mido.Message("note_on", channel=9, note=36, velocity=100),
                            mido.Message("note_off", channel=9, note=36, velocity=0, time=960)])
    mido.MidiFile(tracks=[track], ticks_per_beat=480).save(drums)
    assert main(["render", str(drums), "--out", str(tmp_path / "d.wav")]) == 0
    samples, rate = _read(tmp_path / "d.wav")
    assert samples.shape[0] == pytest.approx(3.0 * rate, abs=10) and float(np.abs(samples).max()) < 1e-3


def test_render_writes_only_wav_or_flac(tmp_path: Path, capsys) -> None:
    piece = write_piece(tmp_path / "piece.mid")
    assert main(["render", str(piece), "--out", str(tmp_path / "x.mp3")]) == 2
    assert capsys.readouterr().err.strip() == f"jamtui: error: --out: {tmp_path / 'x.mp3'}: give a .wav or .flac file"
