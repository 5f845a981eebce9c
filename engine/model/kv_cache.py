"""KVCache: preallocated keys and values of one sequence, with the sliding-window trim of the live path.

Positions. Slot i of the cache holds the token at absolute position `start_pos + i`; keys are
stored already rotated for that position. `trim(keep_last)` drops the oldest slots and adds
their count to `start_pos`, so absolute positions keep growing for the whole session and new
tokens are rotated for `start_pos + length`. Rotary attention scores depend only on the
difference of query and key positions, so the kept keys keep their exact relative geometry and
nothing has to be re-rotated. The model computes rotation angles in float64, which stays
accurate (error ~1e-16 * position rad) far beyond any session length, so positions past
`max_len` are fine. (The other option, re-rotating the kept keys back to position 0 on every
trim, costs a pass over the cache and accumulates rounding error; growing positions cost nothing.)

Approximation. A trimmed cache is not what a fresh prefill of the kept tokens would produce:
above the first layer, the kept keys and values were computed while attending to the dropped
tokens. That is usually what a live duet wants (no stall, context fades out), but when
exactness matters call `model.reprefill(cache)`, which recomputes the cache from the kept ids.
"""
from __future__ import annotations

import torch

from engine.model.config import ModelConfig


class CacheFullError(ValueError):
    """Raised when tokens would not fit; trim the cache first."""


class KVCache:
    """Keys and values for one sequence (batch 1), preallocated at `max_len` slots.

    Owned by one thread (the generate thread); nothing here is locked.
    """

    def __init__(
        self,
        n_layer: int,
        n_kv_head: int,
        head_dim: int,
        max_len: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.max_len = max_len
        # (L, 2, 1, Hkv, S, D): a batch dim of 1 so attention reads it without reshaping
        self.kv = torch.zeros(n_layer, 2, 1, n_kv_head, max_len, head_dim, device=device, dtype=dtype)
        self.tokens = torch.zeros(max_len, dtype=torch.long)  # ids of the cached slots, on the CPU
        self.length = 0       # slots in use
        self.start_pos = 0    # absolute position of slot 0
        self.last_logits: torch.Tensor | None = None  # (V,) logits after the last cached token

    @classmethod
    def for_config(
        cls,
        config: ModelConfig,
        max_len: int | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> KVCache:
        return cls(config.n_layer, config.n_kv_head, config.head_dim, max_len or config.max_len, device, dtype)

    @property
    def next_pos(self) -> int:
        """Absolute position of the next token."""
        return self.start_pos + self.length

    @property
    def room(self) -> int:
        return self.max_len - self.length

    def token_ids(self) -> list[int]:
        return self.tokens[: self.length].tolist()

    def reset(self) -> None:
        """Forget everything; positions restart at 0. (Stale slots are overwritten, not zeroed.)"""
        self.length = 0
        self.start_pos = 0
        self.last_logits = None

    def extend(self, model, token_ids) -> torch.Tensor:
        """Append tokens by running them through `model`; returns the logits after the last one."""
        return model.extend(token_ids, self)

    @torch.inference_mode()
    def trim(self, keep_last: int) -> None:
        """Keep only the newest `keep_last` slots (see the module docstring for what this approximates)."""
        if keep_last < 0:
            raise ValueError(f"keep_last must be >= 0, got {keep_last}")
        drop = self.length - keep_last
        if drop <= 0:
            return
        if keep_last:
            # Source and destination overlap when keep_last > drop, hence the clone.
            self.kv[..., :keep_last, :] = self.kv[..., drop : self.length, :].clone()
            self.tokens[:keep_last] = self.tokens[drop : self.length].clone()
        self.start_pos += drop
        self.length = keep_last
        # last_logits stays: it still predicts the next token (from the pre-trim context).

    def truncate(self, length: int) -> None:
        """Drop the newest slots so `length` remain (a rollback; exact, unlike `trim`). The next
        token's logits are unknown until another token is appended: `last_logits` becomes None."""
        if not 0 <= length <= self.length:
            raise ValueError(f"length must be in [0, {self.length}], got {length}")
        if length < self.length:
            self.length = length
            self.last_logits = None

    def check_room(self, n_tokens: int) -> None:
        if n_tokens > self.room:
            raise CacheFullError(
                f"{n_tokens} tokens do not fit in the KV cache ({self.length}/{self.max_len} slots used); trim it first"
            )
