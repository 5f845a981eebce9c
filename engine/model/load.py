"""Loading a playable model: a checkpoint and its tokenizer, checked against each other, with its
LoRA adapters (styles) merged in, on the device that decodes fastest (fp32 on one CPU thread, or
fp16 on CUDA)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import torch

from engine.model.checkpoint import CheckpointError, load_checkpoint, read_meta
from engine.model.config import DEFAULT_MODEL_DIR
from engine.model.device import choose_device
from engine.tokens.tokenizer import JamTokenizer, TokenizerConfigError

log = logging.getLogger(__name__)


def load_model(path: Path | None = None, adapters: Sequence[tuple[str | os.PathLike, float]] = ()):
    """(live model, tokenizer) of the checkpoint at `path` (default: the shipped model) with
    `adapters` ((directory, weight 0-2), ...) merged into its weights. Raises CheckpointError (a
    broken or mismatched checkpoint; AdapterError for an adapter) or DeviceError ($JAMTUI_DEVICE)."""
    path = Path(path) if path is not None else DEFAULT_MODEL_DIR
    meta = read_meta(path)
    try:
        tokenizer = JamTokenizer.from_dict(meta.tokenizer)
    except TokenizerConfigError as exc:
        raise CheckpointError(path, f"its tokenizer does not match this jamtui's: {exc}") from exc
    torch.set_num_threads(1)  # measured faster under load on 2 cores (docs in README)
    checkpoint = load_checkpoint(path, expected_tokenizer=tokenizer.to_dict(), device="cpu", adapters=adapters)
    model, why = choose_device(checkpoint.model)
    styles = ", ".join(f"{Path(a).name}:{w:g}" for a, w in adapters)
    log.info("model %s%s on %s", path.name, f" + {styles}" if styles else "", why)
    return model, tokenizer
