"""Where the live model runs: the device that decodes a token fastest on this machine.

FP16 on a GPU wins for larger models; for a small one the GPU's per-kernel launch cost can
make each decoded token slower than on one CPU core (measured on an H100 machine with the
1.8M-parameter default model: 2.6 ms per token on the GPU, 1.6 ms on the CPU). So "auto"
times a few cached decode steps on each device and keeps the faster; `JAMTUI_DEVICE`
(cpu, cuda, auto) overrides.
"""
from __future__ import annotations

import copy
import logging
import os
import statistics

import torch

from engine.model.bench import time_decodes

log = logging.getLogger(__name__)
DEVICES = ("auto", "cpu", "cuda")


class DeviceError(ValueError):
    """$JAMTUI_DEVICE (or the requested device) names no device jamtui knows; one line."""


def decode_ms(model, context_tokens: int = 256, steps: int = 40) -> float:
    """Median ms of one cached decode step at `context_tokens` (after a warm-up)."""
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    ids = torch.arange(3, context_tokens + 3) % model.config.vocab_size
    return statistics.median(time_decodes(model, ids, steps + 8, sync=sync)[8:])


def choose_device(cpu_model, requested: str | None = None) -> tuple[object, str]:
    """(the model on its device, why). `cpu_model` is fp32 on the CPU; `requested` (else
    $JAMTUI_DEVICE, else "auto") is one of DEVICES. Raises DeviceError for another value."""
    requested = (requested or os.environ.get("JAMTUI_DEVICE") or "auto").lower()
    if requested not in DEVICES:
        raise DeviceError(f"device must be one of {', '.join(DEVICES)}, got {requested!r} (JAMTUI_DEVICE)")
    if requested == "cpu" or not torch.cuda.is_available():
        why = "cpu" if requested != "cuda" else "cpu (no CUDA device)"
        return cpu_model, why
    gpu_model = copy.deepcopy(cpu_model).to("cuda", torch.float16)
    gpu_model.warmup()
    if requested == "cuda":
        return gpu_model, "cuda fp16 (asked for)"
    cpu_ms, gpu_ms = decode_ms(cpu_model), decode_ms(gpu_model)
    if gpu_ms < cpu_ms:
        return gpu_model, f"cuda fp16 ({gpu_ms:.2f} ms/token vs {cpu_ms:.2f} on the CPU)"
    del gpu_model
    torch.cuda.empty_cache()
    return cpu_model, f"cpu ({cpu_ms:.2f} ms/token vs {gpu_ms:.2f} with cuda fp16)"
