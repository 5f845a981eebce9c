"""Loading what a jam plays with: the preset and its model (on the faster device) and tokenizer."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("jamtui")


def load_model(path: Path | None):
    """(live model, tokenizer) of a checkpoint, checked against each other: fp32 on one CPU
    thread, or fp16 on CUDA where that decodes faster (engine/model/device.py)."""
    import torch

    from engine.continuation import DEFAULT_MODEL_DIR
    from engine.model.checkpoint import CheckpointError, load_checkpoint, read_meta
    from engine.model.device import choose_device
    from engine.tokenizer import JamTokenizer, TokenizerConfigError

    path = path or DEFAULT_MODEL_DIR
    meta = read_meta(path)
    try:
        tokenizer = JamTokenizer.from_dict(meta.tokenizer)
    except TokenizerConfigError as exc:
        raise CheckpointError(path, f"its tokenizer does not match this jamtui's: {exc}") from exc
    torch.set_num_threads(1)  # measured faster under load on 2 cores (docs in README)
    checkpoint = load_checkpoint(path, expected_tokenizer=tokenizer.to_dict(), device="cpu")
    try:
        model, why = choose_device(checkpoint.model)
    except ValueError as exc:
        from jamtui.errors import UserError

        raise UserError(str(exc)) from exc
    log.info("model on %s", why)
    return model, tokenizer


def preset_and_model(name: str):
    from engine.preset_files import load_preset
    from engine.presets import resolve_model_path

    preset = load_preset(name)
    model, tokenizer = load_model(resolve_model_path(preset))
    return preset, model, tokenizer
