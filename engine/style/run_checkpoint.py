"""A style run's resumable checkpoint in `run/ckpt/`: the adapter, the optimizer and the run's
state, swapped in whole so a crash leaves the previous one; read back, and compared with the
settings of the run that wants to resume it."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from engine.model.adapters import ADAPTER_WEIGHTS_FILE
from engine.style.lora import save_adapter
from engine.training.loop import flatten_optimizer

CKPT_DIR = "ckpt"
_OLD, _TMP = ".ckpt-old", ".ckpt-tmp"  # the previous checkpoint during a swap, the next one being written
OPTIMIZER_FILE, STATE_FILE = "optimizer.safetensors", "state.json"


def save_run_checkpoint(run_dir: Path, model, optimizer, base: Path, state: dict[str, Any]) -> None:
    """`state` (JSON: the run's identity, loop state, rows) beside the adapter and the optimizer."""
    tmp, final, old = run_dir / _TMP, run_dir / CKPT_DIR, run_dir / _OLD
    shutil.rmtree(tmp, ignore_errors=True)
    save_adapter(model, tmp, base)
    tensors, opt_meta = flatten_optimizer(optimizer)
    save_file(tensors, str(tmp / OPTIMIZER_FILE))
    (tmp / STATE_FILE).write_text(json.dumps({**state, "optimizer": opt_meta}))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def read_run_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The run's last checkpoint (its state, and its folder as "dir"), or None."""
    for where in (run_dir / CKPT_DIR, run_dir / _OLD):  # _OLD: a crash in the middle of the swap
        if (where / STATE_FILE).is_file() and (where / ADAPTER_WEIGHTS_FILE).is_file():
            return {**json.loads((where / STATE_FILE).read_text()), "dir": str(where)}
    return None


def clear_run_checkpoints(run_dir: Path) -> None:
    for name in (CKPT_DIR, _OLD, _TMP):
        shutil.rmtree(run_dir / name, ignore_errors=True)


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ ("config.loop.lr")."""
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out
