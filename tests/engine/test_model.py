"""The live model: FastLlama equals transformers' Llama, KV cache and trim behaviour, checkpoints,
config, bench and device choice (sampling and generation: test_sampling.py)."""
from __future__ import annotations

import copy
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

from engine.model.sampling import Sampling, generate  # noqa: E402
from engine.model.checkpoint import (  # noqa: E402
    CheckpointError,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from engine.model.config import ModelConfig  # noqa: E402
from engine.model.kv_cache import CacheFullError  # noqa: E402
from engine.model.transformer import fast_from_hf  # noqa: E402
from tests.engine.models import TINY, TINY_GQA_UNTIED, ids_for, random_hf  # noqa: E402

ATOL = 1e-4
TOKENIZER = {"vocab_size": 61, "fingerprint": "tok-abc123", "kind": "test"}


def hf_logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.as_tensor(ids).view(1, -1)).logits[0]  # (T, V)


@pytest.fixture(scope="module", params=[TINY, TINY_GQA_UNTIED], ids=["mha-tied", "gqa-untied"])
def pair(request):
    hf = random_hf(request.param)
    return hf, fast_from_hf(hf)


# --- equivalence -------------------------------------------------------------------------------


def test_fast_full_forward_matches_hf(pair):
    hf, fast = pair
    ids = ids_for(40)
    ref = hf_logits(hf, ids)
    assert ref.abs().max() > 1.0  # the test would be vacuous on near-zero logits
    torch.testing.assert_close(fast.forward_full(ids), ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(fast.forward_full(ids, last_only=True)[0], ref[-1], atol=ATOL, rtol=0)


def test_cached_decode_matches_full_forward(pair):
    _, fast = pair
    ids = ids_for(30, seed=2)
    full = fast.forward_full(ids)
    cache = fast.new_cache()
    torch.testing.assert_close(fast.prefill(ids[:8], cache), full[7], atol=ATOL, rtol=0)
    for i in range(8, 30):
        torch.testing.assert_close(fast.decode_one(ids[i], cache), full[i], atol=ATOL, rtol=0)
    assert cache.length == 30 and cache.token_ids() == ids


def test_extend_midway_matches_hf_over_concatenation(pair):
    """Prefill the AI's context A, decode a few, append the performer's B in one call, decode more."""
    hf, fast = pair
    a, decoded, b, more = ids_for(10, 3), ids_for(3, 4), ids_for(7, 5), ids_for(4, 6)
    seq = a + decoded + b + more
    ref = hf_logits(hf, seq)
    cache = fast.new_cache()
    got = [fast.prefill(a, cache)]
    got += [fast.decode_one(t, cache) for t in decoded]
    got.append(fast.extend(b, cache))
    got += [fast.decode_one(t, cache) for t in more]
    where = [len(a) - 1] + [len(a) + i for i in range(len(decoded))]
    where += [len(a) + len(decoded) + len(b) - 1] + [len(seq) - len(more) + i for i in range(len(more))]
    for logits, pos in zip(got, where):
        torch.testing.assert_close(logits, ref[pos], atol=ATOL, rtol=0)


def test_fast_from_hf_merges_a_peft_lora_adapter():
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model

    base = random_hf(TINY, seed=7)
    ids = ids_for(20, seed=8)
    base_ref = hf_logits(base, ids)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "gate_proj", "down_proj"])
    )
    with torch.no_grad():  # LoRA B starts at zero; make the adapter do something
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3, generator=torch.Generator().manual_seed(len(name)))
    peft_model.eval()
    ref = hf_logits(peft_model, ids)
    assert not torch.allclose(ref, base_ref, atol=1e-2)  # the adapter matters
    fast = fast_from_hf(peft_model)
    torch.testing.assert_close(fast.forward_full(ids), ref, atol=ATOL, rtol=0)
    # The caller's peft model was merged on a copy: it still has its adapter and its logits.
    assert any("lora_B" in name for name, _ in peft_model.named_parameters())
    torch.testing.assert_close(hf_logits(peft_model, ids), ref)


# --- cache trimming and positions ----------------------------------------------------------------


def test_trim_keeps_relative_geometry_beyond_max_len():
    """With one layer the kept keys/values depend on their own tokens only, so a trimmed cache must
    equal a fresh forward pass over the kept tokens exactly, at absolute positions far past max_len."""
    config = ModelConfig(vocab_size=61, n_layer=1, n_embd=32, n_head=4, n_kv_head=4, intermediate_size=48, max_len=16)
    fast = fast_from_hf(random_hf(config, seed=3))
    cache = fast.new_cache()
    ids = ids_for(100, seed=9)
    fast.prefill(ids[:12], cache)
    for token in ids[12:]:
        if cache.room == 0:
            cache.trim(9)
        logits = fast.decode_one(token, cache)
        kept = cache.token_ids()
        torch.testing.assert_close(logits, fast.forward_full(kept)[-1], atol=ATOL, rtol=0)
    assert cache.next_pos == 100 > 4 * config.max_len
    assert cache.length <= config.max_len


def test_trim_approximates_and_reprefill_is_exact():
    hf = random_hf(TINY, seed=4)
    fast = fast_from_hf(hf)
    ids = ids_for(40, seed=10)
    cache = fast.new_cache()
    fast.prefill(ids[:30], cache)
    cache.trim(12)
    assert cache.token_ids() == ids[18:30] and cache.start_pos == 18 and cache.next_pos == 30
    trimmed = fast.decode_one(ids[30], cache)
    fresh = hf_logits(hf, ids[18:31])[-1]
    # Above layer 1 the kept entries were computed while attending to the dropped ones.
    assert not torch.allclose(trimmed, fresh, atol=ATOL)
    torch.testing.assert_close(fast.reprefill(cache), fresh, atol=ATOL, rtol=0)
    assert cache.start_pos == 0 and cache.token_ids() == ids[18:31]
    torch.testing.assert_close(fast.decode_one(ids[31], cache), hf_logits(hf, ids[18:32])[-1], atol=ATOL, rtol=0)


def test_full_cache_raises_and_generate_trims_with_keep_last():
    fast = fast_from_hf(random_hf(TINY))
    cache = fast.new_cache(max_len=12)
    fast.prefill(ids_for(10), cache)
    with pytest.raises(CacheFullError):
        fast.extend(ids_for(3), cache)
    with pytest.raises(CacheFullError):
        generate(fast, cache, [], 5, Sampling(temperature=0))
    out = generate(fast, cache, [1, 2], 30, Sampling(temperature=0), keep_last=6)
    assert len(out) == 30 and cache.length <= 12 and cache.token_ids()[-1] == out[-1]


def test_bad_token_ids_raise():
    fast = fast_from_hf(random_hf(TINY))
    with pytest.raises(ValueError):
        fast.decode_one(61, fast.new_cache())
    with pytest.raises(ValueError):
        fast.prefill([], fast.new_cache())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_matches_cpu_fp32():
    fast = fast_from_hf(random_hf(TINY))
    ids = ids_for(30)
    ref = fast.forward_full(ids)
    gpu = copy.deepcopy(fast).to("cuda", torch.float16)
    gpu.warmup()
    cache = gpu.new_cache()
    assert cache.kv.is_cuda and cache.kv.dtype == torch.float16
    got = [gpu.prefill(ids[:10], cache)] + [gpu.decode_one(t, cache) for t in ids[10:]]
    torch.testing.assert_close(torch.stack(got).float().cpu(), ref[9:], atol=0.1, rtol=0.02)


# --- checkpoints ----------------------------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path):
    hf = random_hf(TINY_GQA_UNTIED, seed=5)
    path = save_checkpoint(tmp_path / "ckpt", hf, TOKENIZER, model_card="# tiny\nfor tests")
    names = {p.name for p in path.iterdir()}
    assert {"README.md", "config.json", "jamtui.json", "model.safetensors"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl", ".tmp")) for name in names)
    ckpt = load_checkpoint(path, expected_tokenizer=dict(TOKENIZER))
    assert ckpt.config == TINY_GQA_UNTIED
    assert ckpt.tokenizer == TOKENIZER
    assert ckpt.meta.model_card is not None and ckpt.meta.model_card.read_text().startswith("# tiny")
    ids = ids_for(25)
    torch.testing.assert_close(ckpt.model.forward_full(ids), hf_logits(hf, ids), atol=ATOL, rtol=0)


def test_checkpoint_with_lora_adapter_dir(tmp_path):
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model

    hf = random_hf(TINY, seed=6)
    path = save_checkpoint(tmp_path / "base", hf, TOKENIZER)
    peft_model = get_peft_model(hf, LoraConfig(r=2, target_modules=["q_proj", "k_proj", "up_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    peft_model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    ids = ids_for(20)
    ref = hf_logits(peft_model.eval(), ids)
    ckpt = load_checkpoint(path, adapter=tmp_path / "adapter", warmup=False)
    torch.testing.assert_close(ckpt.model.forward_full(ids), ref, atol=ATOL, rtol=0)


def _assert_one_line(exc: CheckpointError, path, *words: str) -> None:
    text = str(exc)
    assert "\n" not in text and str(path) in text, text
    for word in words:
        assert word in text, text


def test_checkpoint_missing_or_unreadable_files(tmp_path):
    path = save_checkpoint(tmp_path / "c", random_hf(TINY), TOKENIZER)
    (path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err.value, path, "unreadable model.safetensors")
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err.value, path, "missing model.safetensors")
    (path / "jamtui.json").unlink()  # written last: a save that died half-way
    with pytest.raises(CheckpointError) as err:
        read_meta(path)
    _assert_one_line(err.value, path, "missing")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "nowhere")
    _assert_one_line(err.value, tmp_path / "nowhere", "not a directory")


def test_checkpoint_wrong_shape(tmp_path):
    path = save_checkpoint(tmp_path / "c", random_hf(TINY), TOKENIZER)
    wider = ModelConfig(**{**TINY.to_dict(), "intermediate_size": 64})
    other = save_checkpoint(tmp_path / "other", random_hf(wider), TOKENIZER)
    (other / "model.safetensors").replace(path / "model.safetensors")  # weights no longer match config.json
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err.value, path, "shape", "mlp")


def test_checkpoint_tokenizer_mismatch(tmp_path):
    path = save_checkpoint(tmp_path / "c", random_hf(TINY), TOKENIZER)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, expected_tokenizer={**TOKENIZER, "fingerprint": "tok-other"})
    _assert_one_line(err.value, path, "fingerprint", "tok-other")
    with pytest.raises(CheckpointError) as err:
        read_meta(path, expected_tokenizer={**TOKENIZER, "vocab_size": 99})
    _assert_one_line(err.value, path, "vocab_size")
    sidecar = json.loads((path / "jamtui.json").read_text())
    sidecar["tokenizer"]["vocab_size"] = 60
    (path / "jamtui.json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err.value, path, "embedding size 61")
    with pytest.raises(CheckpointError):
        save_checkpoint(tmp_path / "d", random_hf(TINY), {"vocab_size": 60, "fingerprint": "x"})


# --- config and bench ----------------------------------------------------------------------------


def test_config_round_trips_and_rejects_unknown_keys():
    assert ModelConfig.from_dict(TINY_GQA_UNTIED.to_dict()) == TINY_GQA_UNTIED
    assert ModelConfig.from_hf(TINY_GQA_UNTIED.to_hf()) == TINY_GQA_UNTIED
    with pytest.raises(ValueError, match="n_layers"):
        ModelConfig.from_dict({"n_layers": 3})
    with pytest.raises(ValueError):
        ModelConfig(n_embd=30, n_head=4)


def test_bench_model_returns_flat_figures():
    from engine.model.bench import bench_model

    threads = torch.get_num_threads()
    fig = bench_model(fast_from_hf(random_hf(TINY)), context_tokens=32, chunk_tokens=8,
                      tokens_per_s_of_music=40.0, decode_samples=20, nocache_samples=3)
    assert torch.get_num_threads() == threads
    for key in ("prefill_ms", "decode_ms_p50", "decode_ms_p99", "nocache_decode_ms_p50", "kv_speedup", "rtf"):
        assert isinstance(fig[key], float) and fig[key] > 0, key
    assert all(isinstance(v, (int, float, str)) for v in fig.values())


def test_choose_device_keeps_the_cpu_without_cuda_and_rejects_unknown_names(tiny_checkpoint, monkeypatch):
    from engine.model.device import choose_device, decode_ms

    model = load_checkpoint(tiny_checkpoint, warmup=False).model
    assert decode_ms(model, context_tokens=32, steps=5) > 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device(model, "auto") == (model, "cpu")
    assert choose_device(model, "cuda")[1] == "cpu (no CUDA device)"
    monkeypatch.setenv("JAMTUI_DEVICE", "gpu")
    with pytest.raises(ValueError, match="JAMTUI_DEVICE"):
        choose_device(model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_choose_device_times_both_on_cuda(tiny_checkpoint):
    from engine.model.device import choose_device

    model = load_checkpoint(tiny_checkpoint, warmup=False).model
    chosen, why = choose_device(model, "auto")
    assert "ms/token" in why and chosen.device.type == ("cuda" if why.startswith("cuda") else "cpu")
    forced, why = choose_device(model, "cuda")
    assert forced.device.type == "cuda" and forced.dtype == torch.float16
