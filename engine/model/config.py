"""ModelConfig: the size and shape of jamtui's Llama-style decoder, and its mapping to `LlamaConfig`.

Plain data with no torch import, so configs can be read, compared and printed cheaply.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

# The model jamtui ships and plays by default (a checkpoint directory; see its README).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "default-model"


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 512
    n_layer: int = 6
    n_embd: int = 256
    n_head: int = 8
    n_kv_head: int = 8            # < n_head for grouped-query attention; must divide n_head
    intermediate_size: int = 704  # SwiGLU hidden width, ~8/3 * n_embd rounded to a multiple of 64
    max_len: int = 1024           # trained context (HF max_position_embeddings); default cache size
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_embd", "n_head", "n_kv_head", "intermediate_size", "max_len"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"ModelConfig.n_embd ({self.n_embd}) is not a multiple of n_head ({self.n_head})")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"ModelConfig.n_head ({self.n_head}) is not a multiple of n_kv_head ({self.n_kv_head})")
        if self.head_dim % 2:
            raise ValueError(f"ModelConfig head_dim ({self.head_dim}) must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def n_params(self) -> int:
        """Parameter count (tied embeddings counted once)."""
        c, d, kv = self.n_embd, self.head_dim, self.n_kv_head
        attn = c * c + 2 * c * kv * d + c * c
        mlp = 3 * c * self.intermediate_size
        per_layer = attn + mlp + 2 * c
        head = 0 if self.tie_embeddings else self.vocab_size * c
        return self.vocab_size * c + self.n_layer * per_layer + c + head

    # --- plain dicts (jamtui.json) ---

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig key {unknown[0]!r}")
        return cls(**data)

    # --- transformers' LlamaConfig, the canonical model for training, LoRA and quantization ---

    def to_hf(self):
        """The equivalent `transformers.LlamaConfig` (imports transformers)."""
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.n_embd,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.n_layer,
            num_attention_heads=self.n_head,
            num_key_value_heads=self.n_kv_head,
            head_dim=self.head_dim,
            hidden_act="silu",
            max_position_embeddings=self.max_len,
            rms_norm_eps=self.rms_norm_eps,
            rope_theta=self.rope_theta,  # transformers 5 folds this into rope_parameters
            tie_word_embeddings=self.tie_embeddings,
            attention_bias=False,
            mlp_bias=False,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=None,
        )

    @classmethod
    def from_hf(cls, hf_config) -> ModelConfig:
        """Read a `LlamaConfig`; raises ValueError for Llama features the fast model does not implement."""
        rope = dict(getattr(hf_config, "rope_parameters", None) or {})
        scaling = getattr(hf_config, "rope_scaling", None)  # transformers 4.x
        rope_type = rope.get("rope_type") or (scaling or {}).get("rope_type") or (scaling or {}).get("type")
        if rope_type not in (None, "default"):
            raise ValueError(f"rope type {rope_type!r} is not supported (only default rotary embeddings)")
        theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
        if getattr(hf_config, "hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {hf_config.hidden_act!r} is not supported (only silu)")
        if getattr(hf_config, "attention_bias", False) or getattr(hf_config, "mlp_bias", False):
            raise ValueError("attention or MLP biases are not supported")
        if (getattr(hf_config, "pretraining_tp", 1) or 1) != 1:
            raise ValueError("pretraining_tp > 1 is not supported")
        n_head = hf_config.num_attention_heads
        head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // n_head
        if head_dim * n_head != hf_config.hidden_size:
            raise ValueError(f"head_dim {head_dim} * n_head {n_head} != hidden_size {hf_config.hidden_size}")
        return cls(
            vocab_size=hf_config.vocab_size,
            n_layer=hf_config.num_hidden_layers,
            n_embd=hf_config.hidden_size,
            n_head=n_head,
            n_kv_head=hf_config.num_key_value_heads or n_head,
            intermediate_size=hf_config.intermediate_size,
            max_len=hf_config.max_position_embeddings,
            rope_theta=float(theta),
            rms_norm_eps=float(hf_config.rms_norm_eps),
            tie_embeddings=bool(getattr(hf_config, "tie_word_embeddings", False)),
        )


# Sizes to choose from; the trainer picks one (and may set vocab_size from the tokenizer).
DEFAULT = ModelConfig()
SMALL = ModelConfig(n_layer=4, n_embd=192, n_head=6, n_kv_head=6, intermediate_size=512)
