"""Playable models kept once loaded, so a console that starts jam after jam loads each
checkpoint once; no torch import until a real load."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


class ModelCache:
    """Each checkpoint loaded once and kept, for jams started again and again (the console).
    Thread-safe: one load at a time; `loader(path) -> (model, tokenizer)` defaults to
    `engine.model.load.load_model` (imported when first needed: it brings torch)."""

    def __init__(self, loader: Callable[[Path], tuple[Any, Any]] | None = None) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._loaded: dict[Path, tuple[Any, Any]] = {}

    def cached(self, path: Path) -> tuple[Any, Any] | None:
        return self._loaded.get(Path(path))

    def get(self, path: Path, *, on_loading: Callable[[Path], None] | None = None) -> LoadedModel:
        """The (model, tokenizer) at `path`; `on_loading(path)` is called before a real load."""
        path = Path(path)
        with self._lock:
            if path in self._loaded:
                model, tokenizer = self._loaded[path]
                return LoadedModel(path, model, tokenizer, 0.0, describe_device(model))
            if on_loading is not None:
                on_loading(path)
            started = time.perf_counter()
            model, tokenizer = (self._loader or _load_model)(path)
            self._loaded[path] = (model, tokenizer)
            return LoadedModel(path, model, tokenizer, time.perf_counter() - started, describe_device(model))


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    model: Any
    tokenizer: Any
    load_s: float  # 0.0 when it came from the cache
    device: str  # e.g. "cpu float32"


def describe_device(model) -> str:
    """Where a model runs, in words ("cpu float32", "cuda float16"); "?" for a stand-in."""
    try:
        return f"{model.device.type} {str(model.dtype).removeprefix('torch.')}"
    except AttributeError:
        return "?"


def _load_model(path: Path) -> tuple[Any, Any]:
    from engine.model.load import load_model  # torch, transformers: only when a model is loaded

    return load_model(path)
