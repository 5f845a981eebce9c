"""Sampling and generation: top-k and top-p, repetition penalties and n-gram blocks, allowed-token
masks, seeded and continued generation, classifier-free guidance."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

from engine.model.sampling import Guidance, Sampling, generate, process_logits, sample  # noqa: E402
from engine.model.transformer import fast_from_hf  # noqa: E402
from tests.engine.models import TINY, ids_for, random_hf  # noqa: E402

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
