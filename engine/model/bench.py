"""Model benchmark: prefill, cached and uncached decode, real-time factor; a flat dict of figures."""
from __future__ import annotations

import copy
import logging
import time

import torch

from engine.model.sampling import Guidance, Sampling, generate
from engine.model.transformer import FastLlama

log = logging.getLogger(__name__)


def _ms(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def time_decodes(model: FastLlama, ids: torch.Tensor, n: int, sync=lambda: None) -> list[float]:
    """Per-token decode times (ms) at a context that stays within [len(ids), len(ids) + 64)."""
    ctx = ids.numel()
    cache = model.new_cache(max_len=max(model.config.max_len, ctx + 64))
    model.prefill(ids, cache)
    times = []
    for i in range(n):
        if cache.length >= ctx + 64:
            cache.trim(ctx)  # not timed: keeps the measured context near ctx
        token = int(ids[i % ctx])
        start = time.perf_counter_ns()
        model.decode_one(token, cache)
        sync()
        times.append(_ms(start))
    return times


def _bench_cuda(cpu_model: FastLlama, ids: torch.Tensor, chunk_tokens: int, tokens_per_s_of_music: float,
                decode_samples: int, gen: torch.Generator) -> dict:
    """The fp16 CUDA rows: the same prefill, cached decode and chunk as on the CPU."""
    sync = torch.cuda.synchronize
    model = copy.deepcopy(cpu_model).to("cuda", torch.float16)
    model.warmup()
    time_decodes(model, ids.clone(), 50, sync=sync)  # allocator and kernels warm at this context
    cache = model.new_cache(max_len=max(model.config.max_len, ids.numel() + chunk_tokens + 1))
    prefill = []
    for _ in range(5):
        start = time.perf_counter_ns()
        model.prefill(ids, cache)
        sync()
        prefill.append(_ms(start))
    decode = time_decodes(model, ids.clone(), decode_samples, sync=sync)
    model.prefill(ids, cache)
    sync()
    start = time.perf_counter_ns()
    out = generate(model, cache, [], chunk_tokens, Sampling(temperature=1.0, top_k=32), generator=gen)
    sync()
    chunk_ms = _ms(start)
    return {
        "cuda_device": torch.cuda.get_device_name(),
        "fp16_prefill_ms": round(_pct(prefill, 0.5), 3),
        "fp16_decode_ms_p50": round(_pct(decode, 0.5), 3),
        "fp16_decode_ms_p99": round(_pct(decode, 0.99), 3),
        "fp16_rtf": round(len(out) / tokens_per_s_of_music / (chunk_ms / 1000), 2),
    }


def bench_model(
    model: FastLlama,
    context_tokens: int = 512,
    chunk_tokens: int = 64,
    tokens_per_s_of_music: float = 40.0,
    decode_samples: int = 500,
    nocache_samples: int = 20,
    seed: int = 0,
) -> dict:
    """Figures for `model` (fp32 CPU, one torch thread; fp16 CUDA too when available).

    prefill_ms: one prefill of `context_tokens`. decode_ms_p50/p99: one cached decode step at
    that context. nocache_decode_ms_p50: the same step by recomputing the whole context (the
    baseline); kv_speedup = nocache / cached p50. rtf: seconds of music generated per second of
    compute for a chunk of `chunk_tokens` generated after the cached context (sampling included,
    no prefill: the live path keeps its cache), at `tokens_per_s_of_music`. guided_rtf: the same
    with classifier-free guidance (a second cache, a second decode per token).
    """
    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (context_tokens,), generator=gen)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cpu_model = model if model.device.type == "cpu" and model.dtype == torch.float32 else None
    if cpu_model is None:
        cpu_model = copy.deepcopy(model).to("cpu", torch.float32)
    try:
        cpu_model.warmup()
        cache = cpu_model.new_cache(max_len=max(cfg.max_len, context_tokens + chunk_tokens + 1))
        prefill = []
        for _ in range(3):
            start = time.perf_counter_ns()
            cpu_model.prefill(ids, cache)
            prefill.append(_ms(start))

        decode = time_decodes(cpu_model, ids, decode_samples)

        nocache = []
        for i in range(nocache_samples):
            grown = torch.cat([ids, ids[: i + 1]])  # the context grows by one token per step
            start = time.perf_counter_ns()
            cpu_model.forward_full(grown, last_only=True)
            nocache.append(_ms(start))

        sampling = Sampling(temperature=1.0, top_k=32)
        cpu_model.prefill(ids, cache)
        start = time.perf_counter_ns()
        out = generate(cpu_model, cache, [], chunk_tokens, sampling, generator=gen)
        chunk_ms = _ms(start)

        # Guidance: the unconditioned cache holds the context without a 16-token "style prefix".
        uncond = cpu_model.new_cache(max_len=cache.max_len)
        cpu_model.prefill(ids[min(16, context_tokens - 1) :], uncond)
        cpu_model.prefill(ids, cache)
        start = time.perf_counter_ns()
        guided = generate(cpu_model, cache, [], chunk_tokens, sampling, generator=gen, guidance=Guidance(uncond, [], 1.5))
        guided_ms = _ms(start)
    finally:
        torch.set_num_threads(threads)

    decode_p50 = _pct(decode, 0.5)
    nocache_p50 = _pct(nocache, 0.5)
    music_s = len(out) / tokens_per_s_of_music
    result = {
        "n_layer": cfg.n_layer,
        "n_embd": cfg.n_embd,
        "n_head": cfg.n_head,
        "vocab_size": cfg.vocab_size,
        "n_params": cfg.n_params(),
        "context_tokens": context_tokens,
        "chunk_tokens": chunk_tokens,
        "torch_threads": 1,
        "prefill_ms": round(_pct(prefill, 0.5), 3),
        "decode_ms_p50": round(decode_p50, 3),
        "decode_ms_p99": round(_pct(decode, 0.99), 3),
        "nocache_decode_ms_p50": round(nocache_p50, 3),
        "kv_speedup": round(nocache_p50 / decode_p50, 2),
        "chunk_ms": round(chunk_ms, 3),
        "rtf": round(music_s / (chunk_ms / 1000), 2),
        "guided_chunk_ms": round(guided_ms, 3),
        "guided_rtf": round(len(guided) / tokens_per_s_of_music / (guided_ms / 1000), 2),
    }
    if torch.cuda.is_available():
        result.update(_bench_cuda(cpu_model, ids, chunk_tokens, tokens_per_s_of_music, decode_samples, gen))
    log.info("model bench: %s", result)
    return result
