"""The live model: FastLlama equals transformers' Llama, KV cache and trim behaviour, checkpoints, sampling."""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.generate import Guidance, Sampling, generate, process_logits, sample  # noqa: E402
from engine.model.checkpoint import (  # noqa: E402
    CheckpointError,
    load_checkpoint,
    new_hf_model,
    read_meta,
    save_checkpoint,
)
from engine.model.config import ModelConfig  # noqa: E402
from engine.model.kv_cache import CacheFullError  # noqa: E402
from engine.model.transformer import fast_from_hf  # noqa: E402

ATOL = 1e-4
TINY = ModelConfig(vocab_size=61, n_layer=2, n_embd=32, n_head=4, n_kv_head=4, intermediate_size=48, max_len=64)
TINY_GQA_UNTIED = ModelConfig(
    vocab_size=61, n_layer=2, n_embd=32, n_head=4, n_kv_head=2, intermediate_size=48, max_len=64,
    rope_theta=500.0, tie_embeddings=False,
)
TOKENIZER = {"vocab_size": 61, "fingerprint": "tok-abc123", "kind": "test"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and spinning OpenMP threads on a busy 2-core box cost seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_hf(config: ModelConfig, seed: int = 0):
    """A LlamaForCausalLM with weights large enough that a wrong rotation or mask shows in the logits."""
    model = new_hf_model(config, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


def hf_logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.as_tensor(ids).view(1, -1)).logits[0]  # (T, V)


def ids_for(n: int, seed: int = 1, vocab: int = 61) -> list[int]:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


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


# --- sampling ----------------------------------------------------------------------------------


PROBS = torch.tensor([0.05, 0.5, 0.15, 0.3])  # order by probability: 1, 3, 2, 0


def kept(logits: torch.Tensor) -> set[int]:
    return set(torch.nonzero(torch.isfinite(logits)).flatten().tolist())


def test_top_k_and_top_p_on_crafted_logits():
    logits = PROBS.log()
    assert kept(process_logits(logits, Sampling(top_k=1))) == {1}
    assert kept(process_logits(logits, Sampling(top_k=2))) == {1, 3}
    assert kept(process_logits(logits, Sampling(top_k=10))) == {0, 1, 2, 3}
    assert kept(process_logits(logits, Sampling(top_p=0.4))) == {1}
    assert kept(process_logits(logits, Sampling(top_p=0.7))) == {1, 3}
    assert kept(process_logits(logits, Sampling(top_p=0.9))) == {1, 3, 2}
    assert kept(process_logits(logits, Sampling(top_p=1.0))) == {0, 1, 2, 3}
    # Temperature comes first: at high temperature the top-p set grows.
    assert kept(process_logits(logits, Sampling(temperature=100.0, top_p=0.7))) == {1, 3, 2}
    gen = torch.Generator().manual_seed(0)
    draws = {sample(logits, Sampling(top_k=2), generator=gen) for _ in range(200)}
    assert draws == {1, 3}
    assert sample(logits, Sampling(temperature=0)) == 1


@settings(max_examples=60, deadline=None)
@given(
    logits=st.lists(st.floats(-8, 8), min_size=2, max_size=40),
    top_p=st.floats(0.05, 0.99),
    top_k=st.integers(1, 45),
)
def test_top_p_keeps_the_smallest_likeliest_set(logits, top_p, top_k):
    logits = torch.tensor(logits)
    probs = torch.softmax(logits, -1)
    kept_p = kept(process_logits(logits, Sampling(top_p=top_p)))
    mass = float(probs[list(kept_p)].sum())
    assert mass >= top_p - 1e-5
    least = min(kept_p, key=lambda i: float(probs[i]))
    assert mass - float(probs[least]) < top_p + 1e-5 or len(kept_p) == 1
    assert all(float(probs[i]) >= float(probs[j]) - 1e-7 for i in kept_p for j in set(range(len(logits))) - kept_p)
    kept_k = kept(process_logits(logits, Sampling(top_k=top_k)))
    assert len(kept_k) >= min(top_k, len(logits))
    assert all(float(logits[i]) >= float(logits[j]) for i in kept_k for j in set(range(len(logits))) - kept_k)


def test_repetition_penalty_and_no_repeat_ngram():
    logits = torch.tensor([1.0, 2.0, 1.9, -1.0])
    penalised = process_logits(logits, Sampling(repetition_penalty=2.0), history=[1, 3])
    torch.testing.assert_close(penalised, torch.tensor([1.0, 1.0, 1.9, -2.0]))
    assert sample(logits, Sampling(temperature=0, repetition_penalty=2.0), history=[1]) == 2
    # History 0 1 3 0: the bigram (0, 1) exists, so 1 may not follow 0 again.
    banned = process_logits(logits, Sampling(no_repeat_ngram=2), history=[0, 1, 3, 0])
    assert kept(banned) == {0, 2, 3}
    assert sample(logits, Sampling(temperature=0, no_repeat_ngram=2), history=[0, 1, 3, 0]) == 2
    assert sample(logits, Sampling(temperature=0, no_repeat_ngram=2, window=2), history=[0, 1, 3, 0]) == 1
    # The n-gram block gives way when it would leave nothing allowed.
    only_one = torch.tensor([False, True, False, False])
    assert kept(process_logits(logits, Sampling(no_repeat_ngram=2), [0, 1, 0], allowed=only_one)) == {1}


def test_allowed_mask_tensor_and_callable():
    fast = fast_from_hf(random_hf(TINY))
    gen = torch.Generator().manual_seed(1)
    mask = torch.zeros(61, dtype=torch.bool)
    mask[[3, 7, 11]] = True
    out = generate(fast, fast.new_cache(), ids_for(5), 25, Sampling(temperature=2.0), allowed=mask, generator=gen)
    assert set(out) <= {3, 7, 11}

    def alternate(history):  # even ids after an odd one and vice versa, as a grammar would
        m = torch.zeros(61, dtype=torch.bool)
        m[(history[-1] + 1) % 2 :: 2] = True
        return m

    out = generate(fast, fast.new_cache(), [4], 25, Sampling(temperature=2.0), allowed=alternate, generator=gen)
    seq = [4] + out
    assert all((a + b) % 2 == 1 for a, b in zip(seq, seq[1:]))
    with pytest.raises(ValueError):
        sample(torch.zeros(61), Sampling(), allowed=torch.zeros(61, dtype=torch.bool))


def test_generate_is_reproducible_with_a_seed_and_stops():
    fast = fast_from_hf(random_hf(TINY))
    prompt = ids_for(8)
    settings = Sampling(temperature=1.5, top_k=20, top_p=0.95, repetition_penalty=1.1)

    def run(seed, **kw):
        return generate(fast, fast.new_cache(), prompt, 20, settings, generator=torch.Generator().manual_seed(seed), **kw)

    assert run(0) == run(0)
    assert run(0) != run(1)
    stopped = run(0, stop=lambda out: len(out) == 5)
    assert stopped == run(0)[:5]


def test_generate_continues_from_cache_and_matches_manual_loop():
    fast = fast_from_hf(random_hf(TINY))
    prompt = ids_for(8)
    greedy = Sampling(temperature=0)
    cache = fast.new_cache()
    first = generate(fast, cache, prompt, 6, greedy)
    second = generate(fast, cache, [], 6, greedy)
    assert cache.token_ids() == prompt + first + second
    assert first + second == generate(fast, fast.new_cache(), prompt, 12, greedy)
    seq = list(prompt)
    for _ in range(12):
        seq.append(int(torch.argmax(fast.forward_full(seq)[-1])))
    assert seq[len(prompt) :] == first + second


def test_guidance_weight_one_is_plain_sampling_and_other_weights_mix():
    fast = fast_from_hf(random_hf(TINY))
    prompt, uncond_prompt = ids_for(10), ids_for(3, seed=11)
    greedy = Sampling(temperature=0)
    plain = generate(fast, fast.new_cache(), prompt, 8, greedy)
    guided = generate(fast, fast.new_cache(), prompt, 8, greedy, guidance=Guidance(fast.new_cache(), uncond_prompt, 1.0))
    assert guided == plain
    # Weight w: argmax of uncond + w * (cond - uncond), checked for the first token.
    w = 3.0
    cond = fast.forward_full(prompt)[-1]
    uncond = fast.forward_full(uncond_prompt)[-1]
    out = generate(fast, fast.new_cache(), prompt, 1, greedy, guidance=Guidance(fast.new_cache(), uncond_prompt, w))
    assert out == [int(torch.argmax(uncond + w * (cond - uncond)))]


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
