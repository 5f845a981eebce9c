"""FastLlama: the Llama decoder math, re-implemented compactly for the live per-token path.

transformers' `LlamaForCausalLM` stays the canonical model (training, LoRA, quantization,
checkpoints); `fast_from_hf` copies its weights here. Same math: RMSNorm, rotary embeddings
with HF's rotate-half layout, SwiGLU MLP, multi-head or grouped-query attention, tied or
untied embeddings. What differs is only overhead: fused q/k/v and gate/up projections, a
preallocated `KVCache`, no per-call config dispatch.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.model.config import ModelConfig
from engine.model.kv_cache import KVCache

_HAS_RMS_NORM = hasattr(F, "rms_norm")  # torch >= 2.4
_HAS_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)  # SDPA's enable_gqa


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if _HAS_RMS_NORM and x.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)  # one call on the fp32 hot path
    # As HF's LlamaRMSNorm: normalise in fp32, cast back, then scale in the model dtype.
    xf = x.float()
    if _HAS_RMS_NORM:
        y = F.rms_norm(xf, (xf.shape[-1],), eps=eps)
    else:
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * y.to(x.dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x (B, H, T, D), cos/sin (T, D). HF layout: the two halves of D form the rotated pairs.
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Block(nn.Module):
    """One decoder layer: x + attn(norm(x)), then x + mlp(norm(x)).

    Weights are stored (in, out), transposed from nn.Linear: for a single row, `x @ W` is the
    faster matrix-vector product on CPU (~30% in our decode measurements).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c, d = config.n_embd, config.head_dim
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, d
        self.eps = config.rms_norm_eps
        self.attn_norm = nn.Parameter(torch.ones(c))
        self.wqkv = nn.Parameter(torch.empty(c, (config.n_head + 2 * config.n_kv_head) * d))  # q, k, v side by side
        self.wo = nn.Parameter(torch.empty(config.n_head * d, c))
        self.mlp_norm = nn.Parameter(torch.ones(c))
        self.w_gate_up = nn.Parameter(torch.empty(c, 2 * config.intermediate_size))  # gate, up side by side
        self.w_down = nn.Parameter(torch.empty(config.intermediate_size, c))

    def forward(
        self,
        x: torch.Tensor,                 # (T, C)
        cos: torch.Tensor,               # (T, D)
        sin: torch.Tensor,               # (T, D)
        kv: torch.Tensor | None = None,  # (2, 1, Hkv, S, D): this layer's cache
        start: int = 0,                  # cache slot of x[0]
        mask: torch.Tensor | None = None,  # (T, start + T) bool, True = may attend
    ) -> torch.Tensor:
        T, C = x.shape
        H, Hkv, D = self.n_head, self.n_kv_head, self.head_dim

        h = rms_norm(x, self.attn_norm, self.eps)
        qkv = (h @ self.wqkv).view(1, T, H + 2 * Hkv, D).transpose(1, 2)  # (1, H + 2Hkv, T, D)
        qk = apply_rope(qkv[:, : H + Hkv], cos, sin)  # q and k rotated together: (1, H + Hkv, T, D)
        q, k, v = qk[:, :H], qk[:, H:], qkv[:, H + Hkv :]
        if kv is not None:
            end = start + T
            kv[0, :, :, start:end] = k
            kv[1, :, :, start:end] = v
            k, v = kv[0, :, :, :end], kv[1, :, :, :end]  # (1, Hkv, end, D)
        gqa = {}
        if Hkv != H:
            if _HAS_GQA:
                gqa["enable_gqa"] = True  # query head h reads kv head h // (H / Hkv), as repeat_interleave
            else:
                k = k.repeat_interleave(H // Hkv, dim=1)  # (1, H, S, D)
                v = v.repeat_interleave(H // Hkv, dim=1)
        # A single query sees the whole cache; a block starting at slot 0 is plainly causal;
        # a block appended to a non-empty cache needs the explicit mask.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1, **gqa)  # (1, H, T, D)
        x = x + y.transpose(1, 2).reshape(T, H * D) @ self.wo

        h = rms_norm(x, self.mlp_norm, self.eps)
        gate, up = (h @ self.w_gate_up).chunk(2, dim=-1)  # (T, I) each
        return x + (F.silu(gate) * up) @ self.w_down


class FastLlama(nn.Module):
    """Inference-only Llama with explicit `prefill` / `extend` / `decode_one` over a `KVCache`.

    Move with `.to(device, dtype)` (fp32 on CPU, fp16 on CUDA). Called from one thread at a time.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Parameter(torch.empty(config.vocab_size, config.n_embd))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = nn.Parameter(torch.ones(config.n_embd))
        self.lm_head = None if config.tie_embeddings else nn.Parameter(torch.empty(config.vocab_size, config.n_embd))
        d = config.head_dim
        # Not a buffer: .to(dtype=float16) would cast it, and angles must stay float64 (see kv_cache).
        self.inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))  # (D/2,)
        self.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.wte.device

    @property
    def dtype(self) -> torch.dtype:
        return self.wte.dtype

    def new_cache(self, max_len: int | None = None) -> KVCache:
        """An empty cache on this model's device and dtype (`max_len` defaults to the trained context)."""
        return KVCache.for_config(self.config, max_len, self.device, self.dtype)

    # --- internals ---

    def _rope(self, start_pos: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.inv_freq.device != self.device:
            self.inv_freq = self.inv_freq.to(self.device)
        pos = torch.arange(start_pos, start_pos + T, dtype=torch.float64, device=self.device)
        angles = torch.outer(pos, self.inv_freq)  # (T, D/2)
        emb = torch.cat((angles, angles), dim=-1)  # (T, D)
        return emb.cos().to(self.dtype), emb.sin().to(self.dtype)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        head = self.wte if self.lm_head is None else self.lm_head  # (V, C), as the embedding
        return F.linear(rms_norm(x, self.norm, self.config.rms_norm_eps), head)  # (T, V)

    def _ids(self, token_ids) -> torch.Tensor:
        ids = torch.as_tensor(token_ids, dtype=torch.long).reshape(-1).cpu()  # (T,)
        if ids.numel() == 0:
            raise ValueError("need at least one token")
        if int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size:
            raise ValueError(f"token id out of range [0, {self.config.vocab_size})")
        return ids

    # --- public API ---

    @torch.inference_mode()
    def forward_full(self, token_ids, last_only: bool = False) -> torch.Tensor:
        """No cache: logits for every position of one sequence, (T,) ids -> (T, V); `last_only` -> (1, V)."""
        ids = self._ids(token_ids).to(self.device)
        T = ids.numel()
        cos, sin = self._rope(0, T)
        x = F.embedding(ids, self.wte)  # (T, C)
        for block in self.blocks:
            x = block(x, cos, sin)
        if last_only:
            x = x[-1:]
        return self._logits(x)  # (T, V)

    forward = forward_full

    @torch.inference_mode()
    def extend(self, token_ids, cache: KVCache) -> torch.Tensor:
        """Append tokens to the cache in one pass; returns the logits after the last one, (V,)."""
        return self._extend(self._ids(token_ids), cache)

    def _extend(self, ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        T = ids.numel()
        cache.check_room(T)
        start = cache.length
        cos, sin = self._rope(cache.next_pos, T)
        mask = None
        if start > 0 and T > 1:
            cols = torch.arange(start + T, device=self.device)
            rows = torch.arange(start, start + T, device=self.device)
            mask = cols[None, :] <= rows[:, None]  # (T, start + T)
        x = F.embedding(ids.to(self.device), self.wte)  # (T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, cos, sin, cache.kv[layer], start, mask)
        cache.tokens[start : start + T] = ids
        cache.length = start + T
        cache.last_logits = self._logits(x[-1])  # (V,)
        return cache.last_logits

    @torch.inference_mode()
    def prefill(self, token_ids, cache: KVCache) -> torch.Tensor:
        """Reset the cache and fill it with `token_ids`; returns the logits of the last position, (V,)."""
        cache.reset()
        return self.extend(token_ids, cache)

    @torch.inference_mode()
    def decode_one(self, token_id: int, cache: KVCache) -> torch.Tensor:
        """Append one token; returns the logits for the next one, (V,)."""
        token_id = int(token_id)
        if not 0 <= token_id < self.config.vocab_size:
            raise ValueError(f"token id {token_id} out of range [0, {self.config.vocab_size})")
        return self._extend(torch.tensor((token_id,)), cache)

    @torch.inference_mode()
    def reprefill(self, cache: KVCache) -> torch.Tensor:
        """Recompute the cache from its kept token ids, exactly as a fresh prefill (positions restart at 0)."""
        ids = cache.tokens[: cache.length].clone()
        return self.prefill(ids, cache)

    @torch.inference_mode()
    def warmup(self, steps: int = 8) -> None:
        """Run a short prefill and a few decode steps so the first live token does not pay for allocation."""
        cache = self.new_cache(max_len=min(self.config.max_len, 2 * steps + 2))
        self.prefill(list(range(min(steps, self.config.vocab_size))), cache)
        for i in range(steps):
            self.decode_one(i % self.config.vocab_size, cache)

    # --- weights ---

    @classmethod
    def from_hf_state_dict(cls, config: ModelConfig, sd: dict[str, torch.Tensor]) -> FastLlama:
        """Build from a `LlamaForCausalLM` state dict (fp32 copies); ValueError names a missing or misshaped tensor."""
        c, d, inter = config.n_embd, config.head_dim, config.intermediate_size

        def get(key: str, shape: tuple[int, ...]) -> torch.Tensor:
            if key not in sd:
                raise ValueError(f"missing tensor {key}")
            t = sd[key]
            if tuple(t.shape) != shape:
                raise ValueError(f"tensor {key} has shape {tuple(t.shape)}, expected {shape}")
            return t.detach().to("cpu", torch.float32)

        model = cls(config)
        with torch.no_grad():
            model.wte.copy_(get("model.embed_tokens.weight", (config.vocab_size, c)))
            model.norm.copy_(get("model.norm.weight", (c,)))
            if not config.tie_embeddings:
                model.lm_head.copy_(get("lm_head.weight", (config.vocab_size, c)))
            for i, block in enumerate(model.blocks):
                p = f"model.layers.{i}."
                block.attn_norm.copy_(get(p + "input_layernorm.weight", (c,)))
                # nn.Linear keeps (out, in); Block keeps (in, out), hence the transposes.
                block.wqkv.copy_(torch.cat([
                    get(p + "self_attn.q_proj.weight", (config.n_head * d, c)),
                    get(p + "self_attn.k_proj.weight", (config.n_kv_head * d, c)),
                    get(p + "self_attn.v_proj.weight", (config.n_kv_head * d, c)),
                ]).t())
                block.wo.copy_(get(p + "self_attn.o_proj.weight", (c, config.n_head * d)).t())
                block.mlp_norm.copy_(get(p + "post_attention_layernorm.weight", (c,)))
                block.w_gate_up.copy_(torch.cat([
                    get(p + "mlp.gate_proj.weight", (inter, c)),
                    get(p + "mlp.up_proj.weight", (inter, c)),
                ]).t())
                block.w_down.copy_(get(p + "mlp.down_proj.weight", (c, inter)).t())
        return model


def fast_from_hf(hf_model) -> FastLlama:
    """A FastLlama (fp32, CPU) with the weights of a `LlamaForCausalLM`, or of a peft model with a LoRA adapter.

    A peft model is merged on a copy (`merge_and_unload`), so the caller's model is left as it was.
    A quantized (bitsandbytes) base cannot be converted: merge its adapter into the fp32 base of
    the checkpoint instead (`load_checkpoint(path, adapter=...)`).
    """
    if hasattr(hf_model, "merge_and_unload"):
        hf_model = copy.deepcopy(hf_model).merge_and_unload()
    config = ModelConfig.from_hf(hf_model.config)
    return FastLlama.from_hf_state_dict(config, hf_model.state_dict())
