"""The live model: ModelConfig, FastLlama (Llama math for per-token decoding), KVCache, checkpoints.

Names are imported lazily, so `import engine.model.config` does not pull in torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "ModelConfig": "engine.model.config",
    "DEFAULT": "engine.model.config",
    "SMALL": "engine.model.config",
    "FastLlama": "engine.model.transformer",
    "fast_from_hf": "engine.model.transformer",
    "KVCache": "engine.model.kv_cache",
    "CacheFullError": "engine.model.kv_cache",
    "Checkpoint": "engine.model.checkpoint",
    "CheckpointError": "engine.model.checkpoint",
    "CheckpointMeta": "engine.model.checkpoint",
    "new_hf_model": "engine.model.checkpoint",
    "save_checkpoint": "engine.model.checkpoint",
    "read_meta": "engine.model.checkpoint",
    "load_checkpoint": "engine.model.checkpoint",
    "load_hf_checkpoint": "engine.model.checkpoint",
    "bench_model": "engine.model.bench",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
