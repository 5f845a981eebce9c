"""Offline continuation: prompt parsing, the note grammar, chunked generation, the duet file, bad input."""
from __future__ import annotations

import json
import subprocess

import mido
import pytest
import torch

from engine.offline.continuation import continue_notes
from engine.tokens.grammar import NoteGrammar
from engine.events import AI, PERFORMER, Note
from engine.midi.midifile import load_midi_events, write_duet
from engine.midi.notes import notes_from_events
from engine.tokens.decoder import IncrementalDecoder
from tests.conftest import REPO, jamtui_cmd
from tests.midi_fixtures import write_chords_with_pedal, write_garbage, write_no_notes


@pytest.fixture(scope="module")
def tiny_ckpt(tiny_checkpoint):
    return tiny_checkpoint


def test_prompt_notes_fold_the_pedal(tmp_path):
    notes = notes_from_events(load_midi_events(write_chords_with_pedal(tmp_path)))
    c_chord = [n for n in notes if n.start_s == 0.0]
    assert sorted(n.pitch for n in c_chord) == [60, 64, 67]
    # released at 0.5 s with the pedal down until 0.75 s: they sound until the pedal lifts
    assert all(abs(n.end_s - 0.75) < 1e-6 for n in c_chord)
    assert all(n.player == PERFORMER for n in notes)


def test_grammar_keeps_notes_well_formed(tokenizer):
    grammar = NoteGrammar(tokenizer, (AI,))
    history = [tokenizer.bos_id]
    gen = torch.Generator().manual_seed(1)
    program = tokenizer.token_id("Program_1")
    for _ in range(200):
        mask = grammar(history)
        if mask[program] and torch.rand(1, generator=gen) < 0.5:
            history.append(program)
            continue
        choices = mask.nonzero().flatten()
        history.append(int(choices[torch.randint(len(choices), (1,), generator=gen)]))
    decoder = IncrementalDecoder(tokenizer)
    notes = decoder.feed_all(history)
    assert decoder.problem_count == 0
    assert notes and all(n.player == AI for n in notes)
    assert tokenizer.token_id("Program_0") not in history


def test_continuation_is_seeded_and_inside_its_span(tiny_ckpt, tokenizer, tmp_path):
    from engine.model.checkpoint import load_checkpoint

    model = load_checkpoint(tiny_ckpt, warmup=False).model
    prompt = [Note(i * 0.25, i * 0.25 + 0.2, 60 + i, 80) for i in range(8)]
    a, stats = continue_notes(model, tokenizer, prompt, 6.0, seed=3)
    b, _ = continue_notes(model, tokenizer, prompt, 6.0, seed=3)
    assert a == b
    assert stats.chunks == 3 and stats.tokens > 0
    assert all(1.75 <= n.start_s < 7.75 and n.player == AI for n in a)
    out = tmp_path / "duet.mid"
    write_duet(out, prompt + a)
    midi = mido.MidiFile(out)
    assert [t.name for t in midi.tracks] == ["performer", "ai"]
    assert sum(1 for m in midi.tracks[0] if m.type == "note_on") == 8
    assert sum(1 for m in midi.tracks[1] if m.type == "note_on") == len(a)


def run(*args):
    return subprocess.run(jamtui_cmd(*args), cwd=REPO, capture_output=True, text=True, timeout=120)


def one_line_error(result, *needles):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_generate_bad_prompts(tmp_path, tiny_ckpt):
    one_line_error(run("generate", "--prompt", str(write_no_notes(tmp_path)), "--out", str(tmp_path / "o.mid"),
                       "--model", str(tiny_ckpt)), "no notes")
    one_line_error(run("generate", "--prompt", str(write_garbage(tmp_path)), "--out", str(tmp_path / "o.mid"),
                       "--model", str(tiny_ckpt)), "garbage")


def test_generate_bad_checkpoints(tmp_path, tiny_ckpt):
    import shutil

    prompt = str(write_chords_with_pedal(tmp_path))
    one_line_error(run("generate", "--prompt", prompt, "--out", str(tmp_path / "o.mid"), "--model",
                       str(tmp_path / "nowhere")), "nowhere")
    wrong = tmp_path / "wrong"
    shutil.copytree(tiny_ckpt, wrong)
    config = json.loads((wrong / "config.json").read_text())
    config["hidden_size"] = 48
    (wrong / "config.json").write_text(json.dumps(config))
    one_line_error(run("generate", "--prompt", prompt, "--out", str(tmp_path / "o.mid"), "--model", str(wrong)),
                   "wrong")
    mismatch = tmp_path / "mismatch"
    shutil.copytree(tiny_ckpt, mismatch)
    side = json.loads((mismatch / "jamtui.json").read_text())
    side["tokenizer"]["fingerprint"] = "0000000000000000"
    (mismatch / "jamtui.json").write_text(json.dumps(side))
    one_line_error(run("generate", "--prompt", prompt, "--out", str(tmp_path / "o.mid"), "--model", str(mismatch)),
                   "mismatch")


def test_generate_writes_a_duet(tmp_path, tiny_ckpt):
    out = tmp_path / "duet.mid"
    result = run("generate", "--prompt", str(write_chords_with_pedal(tmp_path)), "--seconds", "4", "--out", str(out),
                 "--model", str(tiny_ckpt))
    assert result.returncode == 0, result.stderr
    assert "real-time factor" in result.stderr
    assert [t.name for t in mido.MidiFile(out).tracks] == ["performer", "ai"]


def test_a_guided_continuation_never_restrikes_and_keeps_the_prompt_key(playful, tokenizer, one_thread):
    from engine.offline.review import review

    c_major = [60, 62, 64, 65, 67, 69, 71, 72]
    prompt = [Note(i * 0.25, i * 0.25 + 0.2, c_major[i % 8], 80) for i in range(32)]
    guided, _ = continue_notes(playful, tokenizer, prompt, 6.0, seed=5)
    free, _ = continue_notes(playful, tokenizer, prompt, 6.0, seed=5, guided=False)
    figures, unguided = review(prompt, guided, "continuous"), review(prompt, free, "continuous")
    assert guided and figures["hammer"] == 0.0
    assert figures["in_scale"] > unguided["in_scale"] and figures["in_scale"] >= 0.7
