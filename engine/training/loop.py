"""The pre-training loop: causal LM on fixed-length token examples, resumable from checkpoints.

Checkpoints are safetensors (model and optimizer tensors) plus a JSON state file, written
atomically; a run stopped at any moment resumes from its last checkpoint.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.training.distributed import ProcessGroup
from engine.training.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopConfig:
    max_steps: int = 20_000
    batch_size: int = 16
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 200
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_batches: int = 16
    patience: int = 6  # evaluations without a better validation loss before stopping
    max_minutes: float | None = None  # stop (resumably) after this much wall time
    seed: int = 0
    threads: int | None = None
    reset_patience: bool = False  # go on after an early stop (e.g. to anneal with a longer max_steps)
    device: str = "cpu"  # "cuda" trains in bf16 autocast; checkpoints are fp32 on the CPU either way


@dataclass
class LoopState:
    step: int = 0
    best_val_loss: float = math.inf
    best_step: int = 0
    evals_since_best: int = 0
    tokens_seen: int = 0
    history: list | None = None
    stopped_because: str | None = None
    elapsed_s: float = 0.0  # training wall time over every run that led here
    runs: list | None = None  # one record per run: device, steps, seconds
    # A style run's cool-down (engine.style.train): the step its plateau began it at, and how far
    # the learning rate's cosine had gone then (0-1); None before.
    cooldown_step: int | None = None
    cooldown_progress: float = 0.0
    # A style run's forgetting check: the base's loss on its own validation windows before training,
    # the forgetting (a share above it) of the best adapter, and evaluations in a row over the budget.
    base_val_loss: float | None = None
    best_forgetting: float | None = None
    evals_over_budget: int = 0


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{os.cpu_count()}-core {platform.machine()} CPU"


def step_progress(step: int, cfg: LoopConfig) -> float:
    """How far past warm-up a run is through its steps (may fall outside 0-1)."""
    return (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)


def lr_at(step: int, cfg: LoopConfig, progress: float | None = None) -> float:
    """Linear warm-up over `warmup_steps`, then a cosine from `lr` to `min_lr` over the rest of
    the run: of its steps, or `progress` (0-1) when given (a run that a time limit ends)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, max(0.0, step_progress(step, cfg) if progress is None else progress))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def lm_loss(model, batch: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, int]:
    """Mean next-token NLL (nats) over non-pad targets, and how many targets there were."""
    device = next(model.parameters()).device
    batch = batch.to(device, non_blocking=True)
    inputs, targets = batch[:, :-1], batch[:, 1:].clone()
    attention = (inputs != pad_id).long()
    targets[targets == pad_id] = -100
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    with autocast:
        logits = model(input_ids=inputs, attention_mask=attention).logits  # (B, T, V)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                                             ignore_index=-100)
    return loss, int((targets != -100).sum())


@torch.no_grad()
def evaluate(model, examples: np.ndarray, pad_id: int, batch_size: int) -> float:
    """Mean NLL per target token (nats) over `examples`."""
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = torch.from_numpy(examples[start:start + batch_size].astype(np.int64))
        loss, count = lm_loss(model, batch, pad_id)
        total_nll += float(loss) * count
        total_tokens += count
    model.train()
    return total_nll / max(1, total_tokens)


def evenly_spaced(rows: np.ndarray, n: int) -> np.ndarray:
    """At most `n` of `rows`, spaced evenly from the first to the last: a validation subset in which
    every file keeps its share, where the first `n` would be the first file or two."""
    if len(rows) <= n:
        return rows
    return rows[np.linspace(0, len(rows) - 1, n).round().astype(np.int64)]


def train(
    model,
    train_examples: np.ndarray,
    val_examples: np.ndarray,
    pad_id: int,
    cfg: LoopConfig,
    ckpt_dir: Path,
    *,
    json_lines: bool = False,
    on_best: Callable[[object, LoopState], None] | None = None,
    initial_state: LoopState | None = None,
    group: ProcessGroup | None = None,
) -> LoopState:
    """Train until max_steps, early stop on validation loss, or max_minutes; resumes from `ckpt_dir`.

    Under torchrun (`group` started, world > 1) every process draws the same batch and trains on
    its share of the rows; their gradients and validation sums are added up, so the run follows
    the one-process run, and only the first process writes checkpoints, calls `on_best` and prints.
    """
    group = group or ProcessGroup()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    model.to(cfg.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    # A run's own checkpoint wins; else `initial_state` (weights already in `model`, e.g. the
    # exported model on a fresh machine: the optimizer's moments restart), else a new run.
    state = _resume(model, optimizer, ckpt_dir) or initial_state or LoopState(history=[])
    if cfg.reset_patience and state.stopped_because == "early stop":
        state.stopped_because, state.evals_since_best = None, 0
    if state.stopped_because == "early stop" or state.step >= cfg.max_steps:
        log.info("training already finished at step %d (%s)", state.step, state.stopped_because)
        return state
    state.stopped_because = None
    state.runs = state.runs or []
    run = {"device": device_name(cfg.device), "from_step": state.step, "to_step": state.step, "seconds": 0.0}
    if group.world > 1:
        run["processes"] = group.world
    state.runs.append(run)
    rng = np.random.default_rng(cfg.seed + state.step)
    progress = Progress(cfg.max_steps, "pretrain", json_lines=json_lines, initial=state.step) if group.main else None
    started = mark = time.monotonic()
    model.train()
    try:
        while state.step < cfg.max_steps:
            idx = rng.integers(0, len(train_examples), cfg.batch_size)
            batch = torch.from_numpy(group.shard(train_examples[idx]).astype(np.int64))
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr_at(state.step, cfg)
            loss, count = lm_loss(model, batch, pad_id)
            total = group.sum(count)[0] if group.world > 1 else count
            # This process's share of the whole batch's mean: summed over the processes, the gradient
            # is the one-process gradient (a shard with no tokens adds nothing).
            optimizer.zero_grad(set_to_none=True)
            (torch.nan_to_num(loss) * (count / max(1, total))).backward()
            group.all_reduce_grads(model)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            state.step += 1
            state.tokens_seen += int(total)
            loss_value = (group.sum(float(torch.nan_to_num(loss.detach())) * count)[0] / max(1, total)
                          if group.world > 1 else loss.item())
            if progress is not None:
                progress.update(1, loss=loss_value, lr=lr_at(state.step, cfg))
            if state.step % cfg.eval_every == 0 or state.step == cfg.max_steps:
                val = _evaluate(model, val_examples, pad_id, cfg, group)
                now = time.monotonic()
                state.elapsed_s += now - mark
                run["seconds"] = round(run["seconds"] + now - mark, 1)
                run["to_step"] = state.step
                mark = now
                improved = val < state.best_val_loss - 1e-4
                if improved:
                    state.best_val_loss, state.best_step, state.evals_since_best = val, state.step, 0
                else:
                    state.evals_since_best += 1
                state.history.append({"step": state.step, "train_loss": loss_value, "val_loss": val,
                                      "tokens_seen": state.tokens_seen})
                if progress is not None:
                    progress.note(step=state.step, val_loss=round(val, 4), best=round(state.best_val_loss, 4),
                                  improved=improved)
                if improved and on_best is not None and group.main:
                    on_best(model, state)
                out_of_time = cfg.max_minutes is not None and (time.monotonic() - started) / 60 >= cfg.max_minutes
                if state.evals_since_best >= cfg.patience:
                    state.stopped_because = "early stop"
                elif group.any(out_of_time):  # every process stops at the same step
                    state.stopped_because = "time limit"
                if group.main:
                    _save(model, optimizer, state, ckpt_dir)
                group.barrier()
                if state.stopped_because:
                    break
        else:
            state.stopped_because = "max steps"
            if group.main:
                _save(model, optimizer, state, ckpt_dir)
            group.barrier()
    finally:
        if progress is not None:
            progress.close()
    return state


def _evaluate(model, examples: np.ndarray, pad_id: int, cfg: LoopConfig, group: ProcessGroup) -> float:
    """`evaluate` over the same rows as one process would score, shared among the processes."""
    rows = evenly_spaced(examples, cfg.batch_size * cfg.eval_batches) if cfg.eval_batches is not None else examples
    if group.world == 1:
        return evaluate(model, rows, pad_id, cfg.batch_size)
    mine = group.shard(rows)
    model.eval()
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(mine), cfg.batch_size):
            loss, count = lm_loss(model, torch.from_numpy(mine[start:start + cfg.batch_size].astype(np.int64)), pad_id)
            if count:
                nll += float(loss) * count
                tokens += count
    model.train()
    total_nll, total_tokens = group.sum(nll, tokens)
    return total_nll / max(1, total_tokens)


def _save(model, optimizer, state: LoopState, ckpt_dir: Path) -> None:
    from safetensors.torch import save_file

    model_tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = flatten_optimizer(optimizer)
    tmp = ckpt_dir / ".tmp"
    tmp.mkdir(exist_ok=True)
    # Tied embeddings share storage; safetensors wants each tensor once.
    save_file({k: v.clone() for k, v in model_tensors.items()}, tmp / "model.safetensors")
    save_file(opt_tensors, tmp / "optimizer.safetensors")
    (tmp / "state.json").write_text(json.dumps({"loop": asdict(state), "optimizer": opt_meta}))
    for name in ("model.safetensors", "optimizer.safetensors", "state.json"):
        os.replace(tmp / name, ckpt_dir / name)


def _resume(model, optimizer, ckpt_dir: Path) -> LoopState | None:
    from safetensors.torch import load_file

    state_path = ckpt_dir / "state.json"
    if not state_path.exists():
        return None
    saved = json.loads(state_path.read_text())
    model.load_state_dict(load_file(ckpt_dir / "model.safetensors", device=str(next(model.parameters()).device)))
    restore_optimizer(optimizer, load_file(ckpt_dir / "optimizer.safetensors"), saved["optimizer"])
    state = LoopState(**saved["loop"])
    log.info("resumed from step %d (best val %.4f at %d)", state.step, state.best_val_loss, state.best_step)
    return state


def flatten_optimizer(optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """The optimizer's state as safetensors-ready tensors (by parameter index) and JSON for its scalars."""
    tensors, meta = {}, {"steps": {}}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for i, param in enumerate(params):
        for key, value in optimizer.state.get(param, {}).items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"{i}.{key}"] = value.detach().cpu().contiguous()
            else:
                meta["steps"][f"{i}.{key}"] = float(value)
    return tensors, meta


def restore_optimizer(optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Put back what `flatten_optimizer` took out (same parameters, same order)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for i, param in enumerate(params):
        st = {}
        for key, value in tensors.items():
            index, name = key.split(".", 1)
            if int(index) == i:
                st[name] = value.to(param.device)
        for key, value in meta["steps"].items():
            index, name = key.split(".", 1)
            if int(index) == i:
                st[name] = torch.tensor(value)
        if st:
            optimizer.state[param] = st
