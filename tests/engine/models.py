"""Test models: tiny configs, random Llamas large enough to show a wrong logit, and Playful,
the tiny real model nudged to play notes often. Torch is imported where it is used."""
from __future__ import annotations

from engine.model.config import ModelConfig

TINY = ModelConfig(vocab_size=61, n_layer=2, n_embd=32, n_head=4, n_kv_head=4, intermediate_size=48, max_len=64)
TINY_GQA_UNTIED = ModelConfig(
    vocab_size=61, n_layer=2, n_embd=32, n_head=4, n_kv_head=2, intermediate_size=48, max_len=64,
    rope_theta=500.0, tie_embeddings=False,
)


def random_hf(config: ModelConfig, seed: int = 0):
    """A LlamaForCausalLM with weights large enough that a wrong rotation or mask shows in the logits."""
    import torch

    from engine.model.checkpoint import new_hf_model

    model = new_hf_model(config, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


def ids_for(n: int, seed: int = 1, vocab: int = 61) -> list[int]:
    import torch

    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


class Playful:
    """A tiny random model nudged to play: notes every eighth or so, instead of random
    leaps of time that would leave most chunks empty."""

    def __init__(self, model, tokenizer):
        import torch

        self._model = model
        self.bias = torch.zeros(tokenizer.vocab_size)
        for i, name in enumerate(tokenizer.vocab):
            if name.startswith("TimeShift_"):
                self.bias[i] = 8.0 if name.split(".")[0] == "TimeShift_0" and 12 <= int(name.split(".")[1]) <= 30 else -8.0
            elif name.startswith("Duration_"):
                self.bias[i] = 4.0 if name.split(".")[0] == "Duration_0" else -4.0
        self.bias[tokenizer.token_id("Program_1")] = 11.0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def extend(self, token_ids, cache):
        return self._model.extend(token_ids, cache) + self.bias

    def decode_one(self, token, cache):
        return self._model.decode_one(token, cache) + self.bias
