"""Checkpoints: a transformers Llama saved as safetensors plus `jamtui.json` (tokenizer config, model card).

A checkpoint directory holds `config.json` and `model.safetensors` (written by transformers'
`save_pretrained`), `jamtui.json` (written last, so its presence marks a complete checkpoint) and
optionally `README.md`, the model card. Loading reads JSON and safetensors only, never pickle, so a
checkpoint shared by a friend cannot run code. LoRA adapters (styles) are merged into the weights
as they load (`engine.model.adapters`).
"""
from __future__ import annotations

import copy
import inspect
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from engine.model.adapters import AdapterWeights, adapter_weights, merge_adapters
from engine.model.config import ModelConfig
from engine.model.errors import CheckpointError
from engine.model.transformer import FastLlama, fast_from_hf

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SIDECAR_FILE = "jamtui.json"
CARD_FILE = "README.md"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointMeta:
    """What `jamtui.json` and `config.json` say, read without torch weights."""

    path: Path
    config: ModelConfig
    tokenizer: dict[str, Any]
    model_card: Path | None


@dataclass
class Checkpoint:
    meta: CheckpointMeta
    model: FastLlama  # merged, moved and warmed up

    @property
    def config(self) -> ModelConfig:
        return self.meta.config

    @property
    def tokenizer(self) -> dict[str, Any]:
        return self.meta.tokenizer


def new_hf_model(config: ModelConfig, seed: int | None = None):
    """A randomly initialised `LlamaForCausalLM` for `config` (the trainer's starting point)."""
    from transformers import LlamaForCausalLM

    if seed is not None:
        torch.manual_seed(seed)
    return LlamaForCausalLM(config.to_hf())


def _check_tokenizer(path: Path, tokenizer: Any, what: str) -> dict[str, Any]:
    if not isinstance(tokenizer, dict):
        raise CheckpointError(path, f"{what} is not a JSON object")
    vocab, fingerprint = tokenizer.get("vocab_size"), tokenizer.get("fingerprint")
    if not isinstance(vocab, int) or isinstance(vocab, bool) or vocab <= 0:
        raise CheckpointError(path, f"{what} has no positive integer vocab_size")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise CheckpointError(path, f"{what} has no fingerprint string")
    return tokenizer


def save_checkpoint(
    path: str | os.PathLike,
    hf_model,
    tokenizer_config: dict[str, Any],
    model_card: str | None = None,
) -> Path:
    """Save a `LlamaForCausalLM` (a peft model is merged on a copy first) with its tokenizer config.

    `tokenizer_config` is opaque JSON with at least `vocab_size` (= the model's) and `fingerprint`.
    `model_card` is Markdown written to README.md. Returns the directory.
    """
    path = Path(path)
    _check_tokenizer(path, tokenizer_config, "tokenizer config")
    if hasattr(hf_model, "merge_and_unload"):
        hf_model = copy.deepcopy(hf_model).merge_and_unload()
    try:
        config = ModelConfig.from_hf(hf_model.config)
    except ValueError as exc:
        raise CheckpointError(path, f"model not supported: {exc}") from exc
    if tokenizer_config["vocab_size"] != config.vocab_size:
        raise CheckpointError(
            path, f"tokenizer vocab_size {tokenizer_config['vocab_size']} != model vocab_size {config.vocab_size}"
        )
    try:
        sidecar_text = json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "model": config.to_dict(),
                "tokenizer": tokenizer_config,
                "model_card": CARD_FILE if model_card is not None else None,
            },
            indent=2,
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(path, f"tokenizer config is not JSON: {exc}") from exc

    path.mkdir(parents=True, exist_ok=True)
    (path / SIDECAR_FILE).unlink(missing_ok=True)  # incomplete until the sidecar is back
    kwargs = {}
    if "safe_serialization" in inspect.signature(hf_model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True  # transformers 4.x; 5.x writes only safetensors
    hf_model.save_pretrained(path, **kwargs)
    if not (path / WEIGHTS_FILE).is_file():
        raise CheckpointError(path, f"save_pretrained did not write {WEIGHTS_FILE}")
    if model_card is not None:
        (path / CARD_FILE).write_text(model_card, encoding="utf-8")
    tmp = path / (SIDECAR_FILE + ".tmp")
    tmp.write_text(sidecar_text, encoding="utf-8")
    os.replace(tmp, path / SIDECAR_FILE)
    log.info("saved checkpoint %s (%s)", path, config)
    return path


def _read_json(path: Path, name: str) -> Any:
    file = path / name
    if not file.is_file():
        raise CheckpointError(path, f"missing {name}")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(path, f"unreadable {name}: {exc}") from exc


def read_meta(path: str | os.PathLike, expected_tokenizer: dict[str, Any] | None = None) -> CheckpointMeta:
    """Check the JSON side of a checkpoint (files, configs, tokenizer match) without loading weights."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(path, "not a directory")
    for name in (CONFIG_FILE, WEIGHTS_FILE, SIDECAR_FILE):
        if not (path / name).is_file():
            raise CheckpointError(path, f"missing {name}")
    sidecar = _read_json(path, SIDECAR_FILE)
    if not isinstance(sidecar, dict):
        raise CheckpointError(path, f"{SIDECAR_FILE} is not a JSON object")
    version = sidecar.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(path, f"{SIDECAR_FILE} format_version {version!r} is not supported (<= {FORMAT_VERSION})")

    hf_dict = _read_json(path, CONFIG_FILE)
    try:
        from transformers import LlamaConfig

        model_type = hf_dict.get("model_type") if isinstance(hf_dict, dict) else None
        if model_type != "llama":
            raise ValueError(f"model_type is {model_type!r}, not 'llama'")
        config = ModelConfig.from_hf(LlamaConfig.from_dict(hf_dict))
    except Exception as exc:  # transformers' config validation raises several types
        raise CheckpointError(path, f"bad {CONFIG_FILE}: {exc}") from exc
    stored = sidecar.get("model")
    if stored is not None:
        try:
            stored_config = ModelConfig.from_dict(stored)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(path, f"bad model config in {SIDECAR_FILE}: {exc}") from exc
        if stored_config != config:
            raise CheckpointError(path, f"{SIDECAR_FILE} model config {stored_config} disagrees with {CONFIG_FILE} {config}")

    tokenizer = _check_tokenizer(path, sidecar.get("tokenizer"), f"tokenizer config in {SIDECAR_FILE}")
    if tokenizer["vocab_size"] != config.vocab_size:
        raise CheckpointError(
            path, f"tokenizer vocab_size {tokenizer['vocab_size']} does not match the model's embedding size {config.vocab_size}"
        )
    if expected_tokenizer is not None:
        for key in ("vocab_size", "fingerprint"):
            if tokenizer.get(key) != expected_tokenizer.get(key):
                raise CheckpointError(
                    path,
                    f"tokenizer {key} {tokenizer.get(key)!r} does not match the expected tokenizer's {expected_tokenizer.get(key)!r}",
                )
    card = sidecar.get("model_card")
    card_path = path / card if isinstance(card, str) and (path / card).is_file() else None
    return CheckpointMeta(path=path, config=config, tokenizer=tokenizer, model_card=card_path)


def _load_weights(path: Path, model) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path / WEIGHTS_FILE))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(path, f"unreadable {WEIGHTS_FILE}: {exc}") from exc
    expected = model.state_dict()
    if model.config.tie_word_embeddings:
        expected.pop("lm_head.weight", None)  # tied to the embedding, not saved
        state.pop("lm_head.weight", None)  # if a writer saved it anyway, the embedding wins
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(path, f"{WEIGHTS_FILE} has no tensor {key}")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                path,
                f"tensor {key} has shape {tuple(state[key].shape)} but {CONFIG_FILE} implies {tuple(tensor.shape)}",
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(path, f"{WEIGHTS_FILE} has unexpected tensor {extra[0]} (and {len(extra) - 1} more)")
    # With tied embeddings lm_head.weight is the embedding Parameter itself, so loading that fills both.
    missing, _ = model.load_state_dict(state, strict=False)
    if set(missing) - {"lm_head.weight"}:
        raise CheckpointError(path, f"{WEIGHTS_FILE} is missing {sorted(missing)[0]}")


def _adapters(adapter: str | os.PathLike | None, adapters) -> AdapterWeights:
    return adapter_weights(([(adapter, 1.0)] if adapter is not None else []) + list(adapters or ()))


def load_hf_checkpoint(
    path: str | os.PathLike,
    expected_tokenizer: dict[str, Any] | None = None,
    adapter: str | os.PathLike | None = None,
    adapters: Sequence[tuple[str | os.PathLike, float]] = (),
):
    """(LlamaForCausalLM in eval mode, CheckpointMeta); LoRA adapters merged in: `adapter` (one
    directory, weight 1) then `adapters` ((directory, weight 0-2), ...), see `engine.model.adapters`.
    Raises CheckpointError, or its subclass AdapterError naming the adapter."""
    from transformers import LlamaConfig, LlamaForCausalLM

    meta = read_meta(path, expected_tokenizer)
    hf_config = LlamaConfig.from_dict(_read_json(meta.path, CONFIG_FILE))
    model = LlamaForCausalLM(hf_config)
    _load_weights(meta.path, model)
    merge_adapters(model, _adapters(adapter, adapters))
    return model.eval(), meta


def load_checkpoint(
    path: str | os.PathLike,
    expected_tokenizer: dict[str, Any] | None = None,
    adapter: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    warmup: bool = True,
    adapters: Sequence[tuple[str | os.PathLike, float]] = (),
) -> Checkpoint:
    """The live model of a checkpoint: checked, adapters merged (`adapter` and `adapters`, as
    `load_hf_checkpoint`), on `device` (fp32 on CPU, fp16 on CUDA by default), warmed up.

    Raises CheckpointError (one line) for missing or unreadable files, weights that do not match
    their config, a tokenizer that does not match the model or `expected_tokenizer`, and an
    adapter that cannot be read or does not fit (AdapterError, naming the adapter).
    """
    hf_model, meta = load_hf_checkpoint(path, expected_tokenizer, adapter, adapters)
    device = torch.device(device)
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    model = fast_from_hf(hf_model).to(device, dtype)
    if warmup:
        model.warmup()
    log.info("loaded checkpoint %s on %s %s", meta.path, device, dtype)
    return Checkpoint(meta=meta, model=model)
