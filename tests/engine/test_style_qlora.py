"""QLoRA (the base in bitsandbytes 4-bit nf4) on the CPU, and both methods on CUDA where there is
one: each trains, and its adapter merges into the fp32 base as a jam loads it."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.style.lora import LoraSettings, Method, TrainError
from tests.engine.style_helpers import (
    assert_every_adapter_learned,
    logits_of,
    start,
    tiny_base,
    tiny_config,
    write_riffs,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tiny_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def riffs(tmp_path_factory) -> list[Path]:
    return write_riffs(tmp_path_factory.mktemp("riffs"))


@pytest.fixture(scope="module")
def fp32_loss_before(tmp_path_factory, riffs, base) -> float:
    """The validation loss of the fp32 base on the windows every run here validates on."""
    out = tmp_path_factory.mktemp("fp32") / "s"
    return start(riffs, out, base, replace(tiny_config(max_steps=1), replay_share=0.0)).run().card["validation"]["loss_before"]


def test_qlora_without_bitsandbytes_is_one_line(tmp_path, riffs, base, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes -> ImportError
    config = replace(tiny_config(max_steps=1), method=Method.QLORA, replay_share=0.0)
    with pytest.raises(TrainError, match="QLoRA needs bitsandbytes") as caught:
        start(riffs, tmp_path / "s", base, config).run()
    assert "\n" not in str(caught.value)


def test_qlora_on_the_cpu_trains_and_its_adapter_merges(tmp_path, riffs, base, caplog, fp32_loss_before):
    pytest.importorskip("bitsandbytes")
    from engine.model.checkpoint import load_checkpoint, load_hf_checkpoint

    config = replace(tiny_config(max_steps=4, eval_every=2), method=Method.QLORA)
    with caplog.at_level("WARNING", logger="engine.style.train"):
        result = start(riffs, tmp_path / "q", base, config).run()
    assert [r.message for r in caplog.records if "plain LoRA" in r.message and "faster" in r.message]
    assert result.steps == 4 and result.card["method"] == "qlora"
    from safetensors.torch import load_file

    assert_every_adapter_learned(load_file(str(result.style_dir / "adapter_model.safetensors")), n_layer=2)
    fit = result.card["validation"]
    assert fit["loss_best"] < fit["loss_before"]  # 4-bit base, adapters learning
    assert 1e-5 < abs(fit["loss_before"] - fp32_loss_before) < 0.05  # the base really was quantized to nf4
    plain, _ = load_hf_checkpoint(base)
    styled, _ = load_hf_checkpoint(base, adapter=result.style_dir)  # merged into the fp32 base
    ids = [1, 200, 300, 250]
    assert not torch.allclose(logits_of(plain, ids), logits_of(styled, ids), atol=1e-3)
    live = load_checkpoint(base, adapter=result.style_dir).model
    assert torch.isfinite(live.forward_full(ids)).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", [Method.LORA, Method.QLORA])
def test_on_cuda_a_style_trains_and_plays_on_the_cpu(tmp_path, riffs, base, method):
    """The GPU path: bf16 autocast (LoRA) or the nf4 base computing in bf16 (QLoRA); the adapter
    it writes merges into the fp32 base on the CPU, as a jam loads it."""
    if method is Method.QLORA:
        pytest.importorskip("bitsandbytes")
    from engine.model.checkpoint import load_checkpoint, load_hf_checkpoint

    config = replace(tiny_config(max_steps=6, eval_every=3, device="cuda"), method=method)
    result = start(riffs, tmp_path / method.value, base, config).run()
    assert result.steps == 6 and result.card["run"]["device"] == torch.cuda.get_device_name(0)
    fit = result.card["validation"]
    assert fit["loss_best"] < fit["loss_before"]
    plain, _ = load_hf_checkpoint(base)
    styled, _ = load_hf_checkpoint(base, adapter=result.style_dir)
    ids = [1, 200, 300, 250]
    assert not torch.allclose(logits_of(plain, ids), logits_of(styled, ids), atol=1e-3)
    assert torch.isfinite(load_checkpoint(base, adapter=result.style_dir).model.forward_full(ids)).all()


def test_qlora_base_keeps_its_gradients_after_an_evaluation(base):
    pytest.importorskip("bitsandbytes")
    from engine.style.lora import add_lora, base_model
    from engine.training.loop import evaluate, lm_loss

    model, _ = base_model(base, Method.QLORA, torch.device("cpu"))
    model = add_lora(model, LoraSettings(rank=4, dropout=0.0))
    ids = torch.randint(4, 300, (2, 33), generator=torch.Generator().manual_seed(0))
    evaluate(model, ids.numpy().astype(np.uint16), pad_id=0, batch_size=2)  # a validation pass, in eval mode
    loss, _ = lm_loss(model, ids, pad_id=0)
    loss.backward()
    no_grad = sorted(n for n, p in model.named_parameters() if ".lora_B." in n and not p.grad.abs().max() > 0)
    assert no_grad == []  # every projection's adapter gets a gradient through the 4-bit layers above it
