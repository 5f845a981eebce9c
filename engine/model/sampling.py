"""Sampling for the live model: logit filters, `sample` for one step and `generate` for a chunk.

Order of filters per step (as transformers does it): repetition penalty and n-gram block over
recent tokens, the allowed-token mask, temperature, top-k, top-p, then a draw from a
`torch.Generator` (seed it for reproducible tests).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from engine.model.kv_cache import KVCache

# A boolean (V,) tensor, True = allowed, or a function of the history (context + generated ids)
# that returns one (or None for "anything goes").
Allowed = torch.Tensor | Callable[[Sequence[int]], "torch.Tensor | None"] | None


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0         # 0 = greedy (argmax after the filters)
    top_k: int = 0                   # 0 = off
    top_p: float = 1.0               # 1 = off; keep the smallest set of tokens with mass >= top_p
    repetition_penalty: float = 1.0  # 1 = off; CTRL-style: positive logits / p, negative * p
    no_repeat_ngram: int = 0         # 0 = off; n: never complete an n-gram already in the window
    window: int = 64                 # recent tokens the penalty and the n-gram block look at

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.no_repeat_ngram < 0 or self.window < 0:
            raise ValueError("no_repeat_ngram and window must be >= 0")


@dataclass
class Guidance:
    """Classifier-free guidance: a second cache fed an unconditioned prompt (e.g. without the style prefix).

    Mixed logits = uncond + weight * (cond - uncond); weight 1 is plain conditioned sampling.
    Costs a second decode per token.
    """

    cache: KVCache
    prompt_ids: Sequence[int]
    weight: float = 1.5


def _banned_ngram_tokens(recent: Sequence[int], n: int) -> list[int]:
    """Tokens that would complete an n-gram already present in `recent`."""
    if n <= 0 or len(recent) < n:
        return []
    if n == 1:
        return list(set(recent))
    prefix = tuple(recent[len(recent) - n + 1 :])
    return [recent[i + n - 1] for i in range(len(recent) - n + 1) if tuple(recent[i : i + n - 1]) == prefix]


def process_logits(
    logits: torch.Tensor,
    sampling: Sampling,
    history: Sequence[int] = (),
    allowed: Allowed = None,
) -> torch.Tensor:
    """The filtered, temperature-scaled logits (fp32, CPU, (V,)); removed tokens are -inf.

    The allowed mask is a hard constraint (ValueError when it allows nothing); the n-gram block
    gives way when it would leave nothing.
    """
    logits = logits.detach().to("cpu", torch.float32).reshape(-1).clone()  # (V,)
    recent = list(history[-sampling.window :]) if sampling.window else []

    if sampling.repetition_penalty != 1.0 and recent:
        idx = torch.tensor(sorted(set(recent)), dtype=torch.long)
        picked = logits[idx]
        p = sampling.repetition_penalty
        logits[idx] = torch.where(picked > 0, picked / p, picked * p)

    if allowed is not None:
        mask = allowed(history) if callable(allowed) else allowed
        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.bool, device="cpu").reshape(-1)
            if mask.numel() != logits.numel():
                raise ValueError(f"allowed mask has {mask.numel()} entries, vocabulary has {logits.numel()}")
            if not bool(mask.any()):
                raise ValueError("allowed mask excludes every token")
            logits = logits.masked_fill(~mask, float("-inf"))

    banned = _banned_ngram_tokens(recent, sampling.no_repeat_ngram)
    if banned:
        blocked = logits.clone()
        blocked[torch.tensor(banned, dtype=torch.long)] = float("-inf")
        if bool(torch.isfinite(blocked).any()):
            logits = blocked

    if sampling.temperature > 0:
        logits = logits / sampling.temperature

    if 0 < sampling.top_k < logits.numel():
        kth = torch.topk(logits, sampling.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))  # ties at the k-th value all stay

    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs  # mass of the strictly more likely tokens
        drop_sorted = mass_before >= sampling.top_p        # the first token always stays
        drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample(
    logits: torch.Tensor,
    sampling: Sampling,
    history: Sequence[int] = (),
    allowed: Allowed = None,
    generator: torch.Generator | None = None,
) -> int:
    """One token id drawn from `logits` (V,) after the filters; greedy when temperature is 0."""
    logits = process_logits(logits.float(), sampling, history, allowed)
    if sampling.temperature == 0:
        return int(torch.argmax(logits))
    # Drawn on the CPU (377 probabilities): a seeded CPU generator works for a CUDA model too.
    probs = torch.softmax(logits, dim=-1).cpu()
    return int(torch.multinomial(probs, 1, generator=generator))


def _feed(model, cache: KVCache, token_ids: Sequence[int], keep_last: int | None) -> torch.Tensor:
    n = len(token_ids)
    if n > cache.room:
        if keep_last is None:
            cache.check_room(n)  # raises CacheFullError
        cache.trim(max(0, min(keep_last, cache.max_len - n)))
    return model.extend(token_ids, cache) if n > 1 else model.decode_one(token_ids[0], cache)


def generate(
    model,
    cache: KVCache,
    prompt_ids: Sequence[int],
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    *,
    stop: Callable[[list[int]], bool] | None = None,
    allowed: Allowed = None,
    generator: torch.Generator | None = None,
    guidance: Guidance | None = None,
    keep_last: int | None = None,
    feed_last: bool = True,
) -> list[int]:
    """Generate up to `max_new_tokens` ids after `prompt_ids`; returns the new ids.

    The prompt is appended to what `cache` already holds (on an empty cache that is a prefill;
    with no prompt the cache's last logits continue it), then each sampled id is fed back with
    `decode_one`. `stop(new_ids)` is asked after every id; the id that stops is included. With
    `feed_last` the final id is fed too, so the cache ends up holding everything returned;
    otherwise pass it at the front of the next prompt. When the cache is full it is trimmed to
    its newest `keep_last` slots (None: raise `CacheFullError`). Runs on the generate thread.
    """
    prompt_ids = [int(t) for t in prompt_ids]
    history = cache.token_ids() + prompt_ids
    if prompt_ids:
        logits = _feed(model, cache, prompt_ids, keep_last)
    elif cache.last_logits is not None:
        logits = cache.last_logits
    else:
        raise ValueError("generate needs prompt ids or a cache that already holds tokens")
    uncond_logits = None
    if guidance is not None:
        guide_prompt = [int(t) for t in guidance.prompt_ids]
        if guide_prompt:
            uncond_logits = _feed(model, guidance.cache, guide_prompt, keep_last)
        elif guidance.cache.last_logits is not None:
            uncond_logits = guidance.cache.last_logits
        else:
            raise ValueError("guidance needs prompt ids or a cache that already holds tokens")

    out: list[int] = []
    for step in range(max_new_tokens):
        if uncond_logits is not None:
            cond, uncond = logits.float(), uncond_logits.float()
            logits = uncond + guidance.weight * (cond - uncond)
        token = sample(logits, sampling, history, allowed, generator)
        out.append(token)
        history.append(token)
        last = (stop is not None and stop(out)) or step == max_new_tokens - 1  # stop sees every id
        if not last or feed_last:
            logits = _feed(model, cache, [token], keep_last)
            if guidance is not None:
                uncond_logits = _feed(model, guidance.cache, [token], keep_last)
        if last:
            break
    return out
