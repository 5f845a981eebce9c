"""Playable models kept once loaded, so a console that starts jam after jam (or switches style
mid-jam) loads each checkpoint, with each set of adapters, once; no torch import until a real load."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.model.adapters import AdapterWeights, adapter_weights

Adapters = Sequence[tuple[str | os.PathLike, float]]


class ModelCache:
    """Each checkpoint, with each set of adapters and weights, loaded once and kept, for jams
    started again and again and styles switched mid-jam (the console). Thread-safe: one load
    at a time. `loader(path)` or, when there are adapters, `loader(path, adapters)` returns
    (model, tokenizer); it defaults to `engine.model.load.load_model` (imported when first
    needed: it brings torch)."""

    def __init__(self, loader: Callable[..., tuple[Any, Any]] | None = None) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._loaded: dict[tuple[Path, AdapterWeights], tuple[Any, Any]] = {}

    def cached(self, path: Path, adapters: Adapters = ()) -> tuple[Any, Any] | None:
        return self._loaded.get((Path(path), adapter_weights(adapters)))

    def get(self, path: Path, adapters: Adapters = (), *,
            on_loading: Callable[[Path], None] | None = None) -> LoadedModel:
        """The (model, tokenizer) at `path` with `adapters` ((directory, weight), ...) merged;
        `on_loading(path)` is called before a real load."""
        path, key = Path(path), adapter_weights(adapters)
        with self._lock:
            if (path, key) in self._loaded:
                model, tokenizer = self._loaded[path, key]
                return LoadedModel(path, model, tokenizer, 0.0, describe_device(model), key)
            if on_loading is not None:
                on_loading(path)
            started = time.perf_counter()
            loader = self._loader or _load_model
            model, tokenizer = loader(path, key) if key else loader(path)
            self._loaded[path, key] = (model, tokenizer)
            return LoadedModel(path, model, tokenizer, time.perf_counter() - started, describe_device(model), key)


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    model: Any
    tokenizer: Any
    load_s: float  # 0.0 when it came from the cache
    device: str  # e.g. "cpu float32"
    adapters: AdapterWeights = ()  # merged into the model's weights

    @property
    def label(self) -> str:
        """The model in words: its directory and styles, e.g. "default-model + mine:0.8"."""
        styles = ", ".join(f"{path.name}:{weight:g}" for path, weight in self.adapters)
        return f"{self.path.name} + {styles}" if styles else self.path.name


def describe_device(model) -> str:
    """Where a model runs, in words ("cpu float32", "cuda float16"); "?" for a stand-in."""
    try:
        return f"{model.device.type} {str(model.dtype).removeprefix('torch.')}"
    except AttributeError:
        return "?"


def _load_model(path: Path, adapters: AdapterWeights = ()) -> tuple[Any, Any]:
    from engine.model.load import load_model  # torch, transformers: only when a model is loaded

    return load_model(path, adapters)
