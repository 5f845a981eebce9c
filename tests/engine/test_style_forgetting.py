"""A style run's forgetting check (`StyleConfig.max_forgetting`): on a base that knows its corpus (block
chords), a style trained hard on other music (arpeggios) raises the base's loss on the corpus's
validation windows; an adapter past the limit is never the style, and a run that stays past it ends."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import mido
import pytest

from engine.style.lora import TrainError
from engine.style.settings import StyleConfig
from tests.engine.style_helpers import start, tiny_base, tiny_config, write_riffs


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/engine/conftest.py


def write_chords(path: Path, root: int, seconds: float = 24.0) -> Path:
    """Low block triads on `root`, a half note each at 120 BPM, soft and loud in turn."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for i in range(int(seconds)):
        pitches = [root + (0, 5, 7, 0)[i % 4] + step for step in (0, 4, 7)]
        for p in pitches:
            track.append(mido.Message("note_on", note=p, velocity=(40, 100)[i % 2], time=0))
        for j, p in enumerate(pitches):
            track.append(mido.Message("note_off", note=p, velocity=0, time=960 if j == 0 else 0))
    midi.save(path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(a base fitted to a built corpus of chords, that corpus, the riffs a style learns)."""
    root = tmp_path_factory.mktemp("forgetting")
    chords = [write_chords(root / f"chords{i}.mid", 36 + i) for i in range(5)]
    corpus = root / "data" / "corpus"
    pieces = []
    for i, path in enumerate(chords):
        split = "val" if i >= 3 else "train"
        (corpus / split).mkdir(parents=True, exist_ok=True)
        (corpus / split / path.name).write_bytes(path.read_bytes())
        pieces.append({"id": f"c/{i}", "split": split, "source": "chords", "path": f"{split}/{path.name}", "tags": {}})
    (corpus / "manifest.json").write_text(json.dumps({"pieces": pieces, "sources": {}}))
    fitted = start(chords, root / "fit-chords", tiny_base(root / "random"), tiny_config(max_steps=30),
                   merge=True).run()
    (root / "riffs").mkdir()
    return fitted.merged_dir, corpus, write_riffs(root / "riffs")


def _hard(max_forgetting: float | None, **loop) -> StyleConfig:
    """Riffs at a steady rate with nothing replayed: the run learns them and forgets the chords, a
    little more at each evaluation (here: under 2% to step 8, over it from step 10)."""
    config = tiny_config(lr=1e-3, min_lr=1e-3, eval_every=2, **loop)
    return replace(config, replay_share=0.0, max_forgetting=max_forgetting, forgetting_windows=8)


def test_a_style_trained_hard_forgets_the_base_corpus(tmp_path, world):
    base, corpus, riffs = world
    result = start(riffs, tmp_path / "free", base, _hard(100.0, max_steps=16), base_corpus=corpus).run()
    history = result.card["run"]["history"]
    assert history[0]["forgetting"] == 0.0 and history[0]["base_val_loss"] > 0
    assert max(h["forgetting"] for h in history) > 0.02  # what the check below is for
    assert result.stopped_because == "max steps" and result.card["forgetting"]["checked"] is True
    unchecked = start(riffs, tmp_path / "off", base, _hard(None, max_steps=2), base_corpus=corpus).run()
    assert unchecked.card["forgetting"]["checked"] is False
    assert all("forgetting" not in h for h in unchecked.card["run"]["history"])
    assert "| forgetting | not checked (turned off) |" in (unchecked.style_dir / "README.md").read_text()


def test_an_adapter_past_the_limit_is_never_the_style_and_the_run_ends(tmp_path, world):
    base, corpus, riffs = world
    limit = 0.02
    seen = []
    result = start(riffs, tmp_path / "held", base, _hard(limit, max_steps=40, patience=2), base_corpus=corpus,
                   on_step=seen.append).run()
    history = result.card["run"]["history"]
    assert result.stopped_because == "forgetting limit" and result.steps < 40
    assert [h["forgetting"] > limit for h in history[-2:]] == [True, True]  # patience evaluations in a row
    best = next(h for h in history if h["step"] == result.card["run"]["best_step"])
    assert best["forgetting"] <= limit and result.card["forgetting"]["best"] == best["forgetting"]
    assert best["step"] > 0 and best["val_loss"] < history[0]["val_loss"]  # it learned, within the limit
    assert any(h["val_loss"] < best["val_loss"] for h in history)  # and passed over better, over the limit
    assert result.card["forgetting"] == {**result.card["forgetting"], "max": limit, "checked": True, "windows": 8}
    assert f"{best['forgetting']:+.1%}, at most 2.0%" in (result.style_dir / "README.md").read_text()
    checked = [line for line in seen if line["val_loss"] is not None]
    assert [line["forgetting"] for line in checked] == [h["forgetting"] for h in history]
    assert all(line["forgetting"] is None for line in seen if line["val_loss"] is None)
    # The resumed run knows it ended, as after an early stop.
    again = start(riffs, tmp_path / "held", base, _hard(limit, max_steps=40, patience=2), base_corpus=corpus,
                  resume=True).run()
    assert again.steps == result.steps and again.stopped_because == "forgetting limit"


def test_without_a_base_corpus_forgetting_is_not_checked(tmp_path, world):
    base, _corpus, riffs = world
    result = start(riffs, tmp_path / "none", base, _hard(0.02, max_steps=4)).run()  # replays nothing, no corpus
    assert result.card["forgetting"]["checked"] is False and result.card["forgetting"]["best"] is None
    assert all("forgetting" not in h for h in result.card["run"]["history"])
    assert "| forgetting | not checked (no base corpus" in (result.style_dir / "README.md").read_text()


@pytest.mark.parametrize("field, value, message", [
    ("max_forgetting", 0.0, "max forgetting must be above 0"),
    ("max_forgetting", -0.1, "max forgetting must be above 0"),
    ("forgetting_windows", 0, "forgetting windows must be positive"),
])
def test_bad_settings_are_one_line(field, value, message):
    with pytest.raises(TrainError, match=message):
        StyleConfig(**{field: value})


def test_the_count_over_the_limit_starts_again_within_it_or_unchecked():
    import numpy as np

    from engine.style.forgetting import ForgettingCheck
    from engine.training.loop import LoopState

    check, state = ForgettingCheck(np.zeros((2, 3), dtype=np.uint16), 0.04), LoopState()
    assert check.begin(state, 2.0) == {"base_val_loss": 2.0, "forgetting": 0.0}
    assert check.judge(state, 2.1) == {"forgetting": 0.05} and state.evals_over_budget == 1
    check.judge(state, 2.2)
    assert state.evals_over_budget == 2 and check.ends(state, 2, "s") and not check.ends(state, 3, "s")
    assert check.judge(state, 2.06) == {"forgetting": 0.03} and state.evals_over_budget == 0
    check.judge(state, 2.2)
    assert check.judge(state, None) == {} and state.evals_over_budget == 0  # a resumed run without its corpus
    assert check.card(state) == {"max": 0.04, "checked": True, "windows": 2, "base_val_loss": 2.0, "best": 0.0}
