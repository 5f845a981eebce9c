"""Style training (`engine.style.train`, `jamtui train`): LoRA on a tiny base, on a repetitive
corpus made in code, with replay, resume, JSON lines and the style directory (QLoRA and CUDA:
test_style_qlora.py)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.style.lora import TrainError
from engine.style.train import StyleExistsError, StyleRun
from engine.training.loop import lr_at
from tests.engine.style_helpers import (
    assert_every_adapter_learned,
    logits_of,
    start,
    tiny_base,
    tiny_config,
    write_riffs,
)

STEP_KEYS = {"step", "loss", "val_loss", "tokens_per_s", "eta_s"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/engine/conftest.py


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tiny_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def riffs(tmp_path_factory) -> list[Path]:
    return write_riffs(tmp_path_factory.mktemp("riffs"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, riffs, base):
    """One finished LoRA style, trained with --json and --merge; (result, stdout lines, on_step lines)."""
    out = tmp_path_factory.mktemp("styles") / "riffs"
    seen = []
    capture = _Stdout()
    with capture:
        result = start(riffs, out, base, json_lines=True, merge=True, corpus={"name": "mine", "hours": 0.03},
                       on_step=seen.append).run()
    return result, capture.lines, seen


class _Stdout:
    """Collect what is printed to stdout (a module fixture cannot use capsys)."""

    def __enter__(self):
        import io

        self._saved, sys.stdout = sys.stdout, io.StringIO()
        return self

    def __exit__(self, *exc):
        self.lines = sys.stdout.getvalue().splitlines()
        sys.stdout = self._saved


def test_lora_lowers_validation_loss_and_writes_a_style(trained, base, riffs):
    result, _lines, _seen = trained
    card = result.card
    assert result.steps == 20 and result.stopped_because == "max steps"
    fit = card["validation"]
    assert fit["loss_best"] < fit["loss_before"] - 0.1  # the riff is easy: the loss must fall
    assert fit["style"]["bits_per_s"] < fit["base"]["bits_per_s"] * 0.98
    assert fit["style"]["nll_per_token"] < fit["base"]["nll_per_token"]

    files = sorted(p.name for p in result.style_dir.iterdir())
    assert {"adapter_config.json", "adapter_model.safetensors", "card.json", "README.md", "merged"} <= set(files)
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    config = json.loads((result.style_dir / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and set(config["target_modules"]) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    from safetensors.torch import load_file

    tensors = load_file(str(result.style_dir / "adapter_model.safetensors"))
    whole = {k for k in tensors if ".lora_A." not in k and ".lora_B." not in k}
    assert_every_adapter_learned(tensors, n_layer=2)
    # The norms and the (tied) embedding are trained whole and moved from the base's.
    assert set(config["modules_to_save"]) >= {"input_layernorm", "post_attention_layernorm", "norm", "embed_tokens"}
    assert whole == {f"base_model.model.model.layers.{i}.{n}.weight" for i in range(2)
                     for n in ("input_layernorm", "post_attention_layernorm")} | {
        "base_model.model.model.norm.weight", "base_model.model.model.embed_tokens.weight", "base_model.model.lm_head.weight"}
    start = load_file(str(base / "model.safetensors"))
    assert not torch.allclose(tensors["base_model.model.model.norm.weight"], start["model.norm.weight"])
    assert not torch.allclose(tensors["base_model.model.model.embed_tokens.weight"], start["model.embed_tokens.weight"])
    assert torch.equal(tensors["base_model.model.lm_head.weight"], tensors["base_model.model.model.embed_tokens.weight"])
    assert (result.style_dir / "adapter_model.safetensors").stat().st_size < 5 * 2**20

    saved = json.loads((result.style_dir / "card.json").read_text())
    assert saved == json.loads(json.dumps(card))
    assert saved["corpus"]["name"] == "mine" and saved["corpus"]["train_files"] == [p.name for p in riffs[:4]]
    assert saved["method"] == "lora" and saved["run"]["steps"] == 20 and saved["run"]["device"]
    assert len(saved["base_model"]["fingerprint"]) == 16 and saved["settings"]["lora"]["rank"] == 4
    assert "riffs" in (result.style_dir / "README.md").read_text()


def test_the_adapter_merges_into_the_base_and_plays(trained, base):
    from engine.model.checkpoint import load_hf_checkpoint
    from engine.model.load import load_model
    from engine.model.sampling import Sampling, generate

    result, _, _ = trained
    plain, _ = load_hf_checkpoint(base)
    styled, _ = load_hf_checkpoint(base, adapter=result.style_dir)
    ids = [1, 200, 300, 250, 210, 100]
    assert not torch.allclose(logits_of(plain, ids), logits_of(styled, ids), atol=1e-3)
    merged, tokenizer = load_model(result.merged_dir)  # the standalone checkpoint of --merge
    merged_hf, _ = load_hf_checkpoint(result.merged_dir)
    assert torch.allclose(logits_of(merged_hf, ids), logits_of(styled, ids), atol=1e-5)
    out = generate(merged, merged.new_cache(64), [tokenizer.bos_id], 16, Sampling(temperature=1.0),
                   generator=torch.Generator().manual_seed(0))
    assert len(out) == 16


def test_json_lines_have_the_step_fields(trained):
    _result, lines, seen = trained
    parsed = [json.loads(line) for line in lines]
    steps = [p for p in parsed if p.get("event") == "train"]
    assert [p["step"] for p in steps] == list(range(21))
    for line in steps:
        assert STEP_KEYS <= set(line)
    assert [p["step"] for p in steps if p["val_loss"] is not None] == [0, 5, 10, 15, 20]
    assert all(p["tokens_per_s"] > 0 and p["eta_s"] >= 0 and math.isfinite(p["loss"]) for p in steps[1:])
    assert steps[-1]["eta_s"] == 0
    assert [s["step"] for s in seen] == list(range(21)) and all(STEP_KEYS <= set(s) for s in seen)


def test_a_run_replays_its_share_of_rows_written_by_the_base(trained):
    result, _, _ = trained
    assert result.replay_rows == 20 * 1 and result.style_rows == 20 * 3  # round(0.25 * 4) of 4 rows
    assert result.card["replay"]["source"] == "pieces the base model wrote"
    cached = list((result.style_dir / "run").glob("replay-*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).shape == (3, 65)


def test_replay_from_the_base_corpus_when_it_is_built(tmp_path, riffs, base):
    corpus = tmp_path / "data" / "corpus"
    (corpus / "train").mkdir(parents=True)
    pieces = []
    for i, riff in enumerate(riffs[:2]):
        (corpus / "train" / riff.name).write_bytes(riff.read_bytes())
        pieces.append({"id": f"t/{i}", "split": "train", "source": "hannds", "path": f"train/{riff.name}", "tags": {}})
    (corpus / "manifest.json").write_text(json.dumps({"pieces": pieces, "sources": {}}))
    result = start(riffs, tmp_path / "style", base, tiny_config(max_steps=2, eval_every=2), base_corpus=corpus).run()
    assert result.card["replay"]["source"].startswith("the base corpus") and result.replay_rows == 2
    assert list((tmp_path / "data" / "pretrain").glob("examples-*/train.npy"))  # pre-training's cache, beside it


def test_resume_after_an_interruption_continues_from_the_checkpoint(tmp_path, riffs, base):
    config = tiny_config(max_steps=8, eval_every=3)
    whole = start(riffs, tmp_path / "whole", base, config).run()

    def interrupt(line):
        if line["step"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        start(riffs, tmp_path / "cut", base, config, on_step=interrupt).run()
    state = json.loads((tmp_path / "cut" / "run" / "ckpt" / "state.json").read_text())
    assert state["loop"]["step"] == 3  # the last evaluation's checkpoint
    seen = []
    resumed = start(riffs, tmp_path / "cut", base, config, on_step=seen.append).run()  # same settings: resumes
    assert [s["step"] for s in seen] == [4, 5, 6, 7, 8]
    assert resumed.steps == 8 and resumed.style_rows == whole.style_rows
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "whole" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    runs = resumed.card["run"]["runs"]
    assert [(r["from_step"], r["to_step"]) for r in runs] == [(0, 3), (3, 8)]


def test_stop_ends_the_run_with_a_style(tmp_path, riffs, base):
    runs = []

    def stop_at_3(line):
        if line["step"] == 3:
            runs[0].stop()  # as the console would, from another thread

    runs.append(start(riffs, tmp_path / "s", base, tiny_config(max_steps=20, eval_every=10), on_step=stop_at_3))
    result = runs[0].run()
    assert result.steps == 4 and result.stopped_because == "stopped"  # seen after step 3, ends after step 4
    assert [h["step"] for h in result.card["run"]["history"]] == [0, 4]
    assert (tmp_path / "s" / "card.json").is_file()


def test_an_existing_style_is_not_overwritten(trained, riffs, base):
    result, _, _ = trained
    before = (result.style_dir / "adapter_model.safetensors").read_bytes()
    with pytest.raises(StyleExistsError, match="already exists") as caught:
        start(riffs, result.style_dir, base).run()
    assert "\n" not in str(caught.value) and "riffs" in str(caught.value)
    with pytest.raises(StyleExistsError, match=r"other settings \(config\.loop\.lr\)"):
        start(riffs, result.style_dir, base, tiny_config(lr=5e-3), resume=True).run()
    assert (result.style_dir / "adapter_model.safetensors").read_bytes() == before


def test_force_replaces_a_style_and_resume_needs_a_checkpoint(tmp_path, riffs, base):
    out = tmp_path / "s"
    with pytest.raises(TrainError, match="nothing to resume"):
        start(riffs, out, base, tiny_config(max_steps=2), resume=True).run()
    first = start(riffs, out, base, tiny_config(max_steps=2, eval_every=2)).run()
    again = start(riffs, out, base, tiny_config(max_steps=4, eval_every=2, lr=5e-3), force=True).run()
    assert first.steps == 2 and again.steps == 4 and again.card["settings"]["loop"]["lr"] == 5e-3


@pytest.mark.parametrize("change, message", [
    ({"val_files": []}, "no validation file"),
    ({"train_files": []}, "no training files"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
    ({"device": "cuda"}, "CUDA is not available"),
])
def test_errors_are_one_line(tmp_path, riffs, base, change, message):
    if change.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    files = {"train_files": riffs[:4], "val_files": riffs[4:]}
    files.update({k: v for k, v in change.items() if k in files})
    config = tiny_config(device=change.get("device", "cpu"))
    with pytest.raises(TrainError, match=message) as caught:
        StyleRun(files["train_files"], files["val_files"], tmp_path / "s", config, base=base).run()
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "s").exists()


def test_the_train_command(tmp_path, riffs, base, monkeypatch, capsys):
    pytest.importorskip("engine.style.corpus")
    from engine.style.corpus import add_files
    from engine.user_dirs import styles_dir
    from jamtui.cli import main

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr("engine.style.train.BASE_CORPUS_DIR", tmp_path / "no-corpus")  # replay the base's samples
    add_files("mine", riffs)
    argv = ["train", "--corpus", "mine", "--name", "riffs", "--steps", "3", "--model", str(base), "--seq-len", "64",
            "--batch", "4", "--copies", "1", "--rank", "2", "--device", "cpu", "--json"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["step"] for line in lines if line.get("event") == "train"] == [0, 1, 2, 3]
    done = lines[-1]
    assert done["event"] == "train-done" and done["steps"] == 3 and done["path"] == str(styles_dir() / "riffs")
    assert done["forgetting"] is None  # no base corpus to check it on
    assert (styles_dir() / "riffs" / "adapter_model.safetensors").is_file()
    card = json.loads((styles_dir() / "riffs" / "card.json").read_text())
    assert card["corpus"]["name"] == "mine" and card["corpus"]["hours"] > 0

    assert main(argv) == 2  # never overwritten silently
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--force" in err[0]
    assert main(["train", "--corpus", "nobody", "--name", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nobody" in err[0]
    assert main(argv[:-3] + ["--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err


def test_a_time_limited_run_anneals_its_learning_rate_over_the_time(tmp_path, riffs, base):
    """With only --minutes, the cosine follows the clock: the rate falls after warm-up and the
    last step, when the time is up, trains at the floor (min_lr)."""
    from engine.style.settings import STEP_CAP

    seen = []
    config = tiny_config(max_steps=STEP_CAP, max_minutes=0.1, eval_every=1000, patience=1000)
    result = start(riffs, tmp_path / "timed", base, config, on_step=seen.append).run()
    assert result.stopped_because == "time limit"
    rates = [line["lr"] for line in seen if line.get("lr") is not None and line["step"] > 2]
    assert len(rates) > 3
    assert all(later <= earlier + 1e-12 for earlier, later in zip(rates, rates[1:]))
    assert rates[0] > 0.5 * config.loop.lr and rates[-1] == pytest.approx(config.loop.min_lr)


def test_early_stop_waits_for_the_second_half_of_the_annealing_then_cools_down(tmp_path, riffs, base):
    """A plateau while the rate is high is not the end: a run that never improves on the base
    (a learning rate too small to move it) goes on to half its cosine (step 11 of 2 + 18); the
    plateau seen at the next evaluation (step 12) cools the rate down to its floor over patience x
    eval_every steps (2), and the run ends there, at step 14 of 20."""
    config = tiny_config(max_steps=20, warmup_steps=2, lr=1e-9, min_lr=1e-10, eval_every=2, patience=1)
    seen = []
    result = start(riffs, tmp_path / "flat", base, config, on_step=seen.append).run()
    assert result.stopped_because == "early stop" and result.steps == 14
    rates = {line["step"]: line["lr"] for line in seen if line.get("lr") is not None}
    cosine = [lr_at(step, config.loop) for step in (12, 13, 14)]  # where the steps alone would be
    assert rates[12] == pytest.approx(cosine[0])
    assert cosine[1] > rates[13] > rates[14] == pytest.approx(config.loop.min_lr)
    assert result.card["run"]["steps"] == 14
