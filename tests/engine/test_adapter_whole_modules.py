"""Adapters that carry whole modules (peft's modules_to_save: the norms, the token embedding and
the output head, as `jamtui train` writes them): merged as peft merges them, blended by weight
from the base's, tied weights moved once, a broken one refused in one line."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

from engine.model.adapters import read_adapter, write_adapter, write_random_adapter  # noqa: E402
from engine.model.checkpoint import load_checkpoint, load_hf_checkpoint, save_checkpoint  # noqa: E402
from engine.model.errors import AdapterError  # noqa: E402
from tests.engine.adapter_helpers import (  # noqa: E402
    TOKENIZER,
    assert_one_line,
    edit_config,
    merged_state,
    peft_adapter,
    rewrite_tensors,
)
from tests.engine.models import TINY, TINY_GQA_UNTIED, ids_for, random_hf  # noqa: E402


@pytest.fixture
def base(tmp_path):
    hf = random_hf(TINY, seed=3)
    return hf, save_checkpoint(tmp_path / "base", hf, TOKENIZER)


@pytest.mark.parametrize("config", [TINY, TINY_GQA_UNTIED], ids=["mha-tied", "gqa-untied"])
def test_modules_saved_whole_merge_as_peft_merges_them(tmp_path, config):
    pytest.importorskip("peft")
    hf = random_hf(config, seed=6)
    path = save_checkpoint(tmp_path / "base", hf, TOKENIZER)
    whole = ["input_layernorm", "post_attention_layernorm", "norm", "embed_tokens"]
    if not config.tie_embeddings:
        whole.append("lm_head")
    reference = peft_adapter(hf, tmp_path / "style", targets=["q_proj", "down_proj"], whole=whole)
    want = merged_state(reference)
    got, _ = load_hf_checkpoint(path, adapters=[(tmp_path / "style", 1.0)])
    got_state, start = got.state_dict(), hf.state_dict()
    for key, tensor in want.items():
        torch.testing.assert_close(got_state[key], tensor, atol=1e-6, rtol=1e-5, msg=key)
    for key in ("model.norm.weight", "model.layers.1.input_layernorm.weight", "model.embed_tokens.weight",
                "lm_head.weight"):
        assert not torch.allclose(got_state[key], start[key]), key
    if config.tie_embeddings:  # the output head is still the embedding, moved once
        assert got.lm_head.weight is got.model.embed_tokens.weight
    adapter = read_adapter(tmp_path / "style")
    assert adapter.config.modules_to_save == tuple(whole)
    # What peft trained: a tied output head, which peft saves as a copy of the embedding, once.
    assert adapter.n_params == sum(p.numel() for p in reference.parameters() if p.requires_grad)
    ids = ids_for(20)
    live = load_checkpoint(path, adapters=[(tmp_path / "style", 1.0)], warmup=False).model
    with torch.no_grad():
        ref_logits = reference(torch.as_tensor(ids).view(1, -1)).logits[0]
    torch.testing.assert_close(live.forward_full(ids), ref_logits, atol=1e-4, rtol=0)


def whole_adapter(path, hf, *, seed):
    """An adapter whose LoRA does nothing (B = 0) and that saves the final norm and the tied
    embedding: (its directory, the saved weights)."""
    gen = torch.Generator().manual_seed(seed)
    state = hf.state_dict()
    norm = state["model.norm.weight"] + torch.randn(32, generator=gen)
    embed = state["model.embed_tokens.weight"] + torch.randn(61, 32, generator=gen)
    pairs = {"model.layers.0.self_attn.q_proj": (torch.randn(4, 32, generator=gen), torch.zeros(32, 4))}
    write_adapter(path, pairs, rank=4, alpha=8.0, whole={"model.norm": norm, "model.embed_tokens": embed,
                                                         "lm_head": embed.clone()})
    return path, {"model.norm.weight": norm, "model.embed_tokens.weight": embed}


@pytest.mark.parametrize("w1, w2", [(0.5, 0.0), (0.5, 1.5), (2.0, 0.25)])
def test_modules_saved_whole_blend_by_weight_from_the_base(base, tmp_path, w1, w2):
    hf, path = base
    one, saved1 = whole_adapter(tmp_path / "one", hf, seed=1)
    two, saved2 = whole_adapter(tmp_path / "two", hf, seed=2)
    assert read_adapter(one).config.modules_to_save == ("embed_tokens", "norm")
    start = hf.state_dict()
    got, _ = load_hf_checkpoint(path, adapters=[(one, w1), (two, w2)])
    for key in saved1:
        want = start[key] + w1 * (saved1[key] - start[key]) + w2 * (saved2[key] - start[key])
        torch.testing.assert_close(got.state_dict()[key], want, atol=1e-5, rtol=1e-5, msg=key)
    assert got.lm_head.weight is got.model.embed_tokens.weight
    assert torch.equal(got.state_dict()["model.layers.0.mlp.up_proj.weight"], start["model.layers.0.mlp.up_proj.weight"])


def test_a_module_saved_whole_that_does_not_fit_is_one_line(base, tmp_path):
    hf, path = base
    style, saved = whole_adapter(tmp_path / "untied", hf, seed=1)
    rewrite_tensors(style, lambda t: t.update({"base_model.model.lm_head.weight": saved["model.embed_tokens.weight"] + 1}))
    with pytest.raises(AdapterError) as err:
        load_hf_checkpoint(path, adapters=[(style, 1.0)])
    assert_one_line(err.value, str(style), "lm_head and model.embed_tokens share one weight")

    style, _ = whole_adapter(tmp_path / "short", hf, seed=1)
    rewrite_tensors(style, lambda t: t.update({"base_model.model.model.norm.weight": torch.ones(31)}))
    with pytest.raises(AdapterError) as err:
        load_hf_checkpoint(path, adapters=[(style, 1.0)])
    assert_one_line(err.value, "model.norm.weight has shape (31,) but the base's model.norm is (32,)")

    style = write_random_adapter(tmp_path / "listed", TINY, rank=4)
    edit_config(style, modules_to_save=["norm"])
    with pytest.raises(AdapterError) as err:
        read_adapter(style)
    assert_one_line(err.value, str(style), "no tensor for norm", "modules_to_save lists")

    style, _ = whole_adapter(tmp_path / "nan", hf, seed=1)
    rewrite_tensors(style, lambda t: t.update({"base_model.model.model.norm.weight": torch.full((32,), float("nan"))}))
    with pytest.raises(AdapterError) as err:
        read_adapter(style)
    assert_one_line(err.value, "model.norm.weight is not finite")
