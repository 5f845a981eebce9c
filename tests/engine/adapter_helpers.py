"""Helpers of the adapter tests: peft adapters to compare against, and adapter files edited
into the broken shapes a user might hand jamtui."""
from __future__ import annotations

import copy
import json

import torch

from engine.model.adapters import ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE

TOKENIZER = {"vocab_size": 61, "fingerprint": "tok-abc123", "kind": "test"}
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def peft_adapter(hf, path, *, r=4, alpha=8, rslora=False, targets=ALL, whole=(), seed=0):
    """A peft LoRA on a copy of `hf` with random B (peft starts B at zero) and the `whole` modules
    (modules_to_save) moved at random, saved as safetensors; returns the peft model (the reference)."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(copy.deepcopy(hf), LoraConfig(r=r, lora_alpha=alpha, use_rslora=rslora,
                                                         target_modules=list(targets), modules_to_save=list(whole) or None,
                                                         ensure_weight_tying=bool(whole) and hf.config.tie_word_embeddings))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            elif "modules_to_save" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    model.save_pretrained(str(path), safe_serialization=True)
    return model.eval()


def merged_state(peft_model) -> dict[str, torch.Tensor]:
    return copy.deepcopy(peft_model).merge_and_unload().state_dict()


def assert_one_line(exc: BaseException, *words: str) -> None:
    text = str(exc)
    assert "\n" not in text, text
    for word in words:
        assert word in text, text


def edit_config(path, **changes):
    file = path / ADAPTER_CONFIG_FILE
    config = json.loads(file.read_text())
    config.update(changes)
    file.write_text(json.dumps(config))


def rewrite_tensors(style, change):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(style / ADAPTER_WEIGHTS_FILE))
    change(tensors)
    save_file(tensors, str(style / ADAPTER_WEIGHTS_FILE))
