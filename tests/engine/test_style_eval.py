"""`jamtui eval`'s figures: held-out prompts, the overlap of continuations, and base vs style."""
from __future__ import annotations

import math

import pytest

from engine.events import AI, PERFORMER, Note
from engine.offline import style_eval
from engine.offline.style_eval import evaluate_style, overlap, polyphony_values, prompts_of
from tests.midi_fixtures import write_scale


def _long_file(directory, name="long.mid", seconds=40.0):
    import mido

    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    step = 240  # eighths at 120 bpm: 4 notes a second
    pitches = [60, 64, 67, 72, 67, 64]
    for i in range(int(seconds * 4)):
        track.append(mido.Message("note_on", note=pitches[i % len(pitches)], velocity=70, time=0))
        track.append(mido.Message("note_off", note=pitches[i % len(pitches)], velocity=0, time=step))
    path = directory / name
    midi.save(path)
    return path


def test_prompts_come_every_20_s_with_what_he_played_next(tmp_path):
    prompts = prompts_of([_long_file(tmp_path)])
    assert [p.at_s for p in prompts] == [8.0, 28.0]  # 48 s would need a continuation past the end
    first = prompts[0]
    assert all(0.0 <= n.start_s < 8.0 and n.player == AI and n.end_s <= 8.0 for n in first.prompt)
    assert all(8.0 <= n.start_s < 16.0 for n in first.real) and len(first.real) == 32
    assert prompts_of([write_scale(tmp_path, "short.mid")]) == []  # 2 s: no room for a prompt


def test_a_long_files_prompts_spread_over_the_whole_performance(tmp_path, monkeypatch):
    monkeypatch.setattr(style_eval, "MAX_PROMPTS_PER_FILE", 3)
    prompts = prompts_of([_long_file(tmp_path, seconds=200.0)])  # points at 8, 28, ..., 188 s
    assert [p.at_s for p in prompts] == [8.0, 88.0, 188.0]  # its start, middle and end, not 8, 28, 48


def test_overlap_of_the_same_music_is_one_and_of_other_music_less():
    line = [Note(i * 0.25, i * 0.25 + 0.2, 60 + i % 7, 70, PERFORMER) for i in range(64)]
    assert overlap(line, line)["oa_mean"] == pytest.approx(1.0)
    chords = [Note(i * 1.0, i * 1.0 + 0.9, p, 100, AI) for i in range(16) for p in (40, 47, 52)]
    other = overlap(line, chords)
    assert other["oa_mean"] < 0.5 and other["oa_polyphony"] == 0.0


def test_polyphony_counts_notes_per_onset_group():
    notes = [Note(0.0, 1.0, 60, 70), Note(0.01, 1.0, 64, 70), Note(0.02, 1.0, 67, 70), Note(1.0, 2.0, 72, 70)]
    assert polyphony_values(notes).tolist() == [3.0, 1.0]


@pytest.fixture
def base_and_style(tmp_path, monkeypatch):
    """A tiny base checkpoint and a random rank-4 style for it; one short prompt per file."""
    import torch

    from engine.model.adapters import write_random_adapter
    from engine.model.checkpoint import new_hf_model, save_checkpoint
    from engine.model.config import ModelConfig
    from engine.tokens.tokenizer import JamTokenizer

    torch.set_num_threads(1)
    monkeypatch.setattr(style_eval, "MAX_PROMPTS_PER_FILE", 1)
    monkeypatch.setattr(style_eval, "CONTINUATION_S", 2.0)
    tokenizer = JamTokenizer()
    config = ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_embd=32, n_head=2, n_kv_head=2,
                         intermediate_size=48, max_len=256)
    base = save_checkpoint(tmp_path / "base", new_hf_model(config, seed=0), tokenizer.to_dict())
    return base, write_random_adapter(tmp_path / "style", config, rank=4, std=0.5)


def test_base_and_style_on_held_out_files(tmp_path, base_and_style):
    base, style = base_and_style
    heldout = [_long_file(tmp_path, "a.mid", 20.0), _long_file(tmp_path, "b.mid", 20.0)]
    result = evaluate_style(style, 1.0, heldout, base=base)
    assert result["prompts"] == 2
    assert result["base_bits_per_s"] > 0 and result["style_bits_per_s"] > 0
    assert result["base_bits_per_s"] != result["style_bits_per_s"]  # the adapter changed the model
    assert result["bits_change"] == pytest.approx(result["style_bits_per_s"] / result["base_bits_per_s"] - 1, abs=1e-3)
    assert result["forgetting"] is None  # no base corpus given
    assert [f["file"] for f in result["per_file"]] == [str(p) for p in heldout]
    assert all(f["style_bits_per_s"] != f["base_bits_per_s"] for f in result["per_file"])
    kinds = {k["kind"]: k for k in result["by_kind"]}
    assert {"pitches", "velocities", "note lengths"} <= set(kinds)
    for name in ("base", "style"):  # each model's kinds share out its whole figure
        assert sum(k[f"{name}_bits_per_s"] for k in kinds.values()) == pytest.approx(result[f"{name}_bits_per_s"], abs=0.1)
    contexts = result["by_context"]
    assert contexts and contexts[0]["first"] == 1 and sum(c["tokens"] for c in contexts) == result["fit"]["base"]["tokens"]
    for name in ("base", "style"):  # so do the bins of tokens read
        assert sum(c[f"{name}_bits_per_s"] for c in contexts) == pytest.approx(result[f"{name}_bits_per_s"], abs=0.1)
    weightless = evaluate_style(style, 0.0, heldout, base=base)
    assert weightless["style_bits_per_s"] == weightless["base_bits_per_s"]
    for name in ("base", "style"):
        assert set(result["overlap"][name]) >= {"oa_pitch_class", "oa_polyphony", "oa_mean"}
    assert all(math.isfinite(v) for v in (result["base_overlap"], result["style_overlap"]))


def test_eval_command_prints_the_table_and_names_bad_input(tmp_path, base_and_style, capsys):
    import json

    from jamtui.cli import main

    base, style = base_and_style
    folder = tmp_path / "heldout"
    folder.mkdir()
    _long_file(folder, "a.mid", 20.0)
    _long_file(folder, "b.mid", 20.0)
    args = ["eval", "--style", str(style), "--heldout", str(folder), "--base", str(base),
            "--base-corpus", str(tmp_path / "none")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "bits per second of music" in out and "overlap polyphony" in out and "forgetting: not measured" in out
    assert "  a.mid" in out and "  b.mid" in out  # each held-out file's bits/s
    assert "by kind of token" in out and "    note lengths" in out and "    pitches" in out
    assert "by tokens of the window read" in out and "    1-64" in out
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prompts"] == 2
    assert main(["eval", "--style", str(style), "--heldout", str(tmp_path / "missing.mid"), "--base", str(base)]) == 2
    assert "missing.mid: no such file or folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval", "--style", str(style), "--heldout", str(empty), "--base", str(base)]) == 2
    assert "no .mid files" in capsys.readouterr().err
