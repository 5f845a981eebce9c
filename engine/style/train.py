"""Fine-tuning a style: `StyleRun` trains LoRA (or QLoRA) adapters of the base model on a pianist's
MIDI files, with replay of the base against forgetting (engine.style.replay), early stop on their
validation files, resumable checkpoints, and DDP across processes when started by torchrun
(engine.style.distributed).

A run lives in `OUT/run/` (the last checkpoint, the best adapter, the replay samples); the
finished style is `OUT/` itself: the best adapter, `card.json`, `README.md` and, if asked,
`merged/` (the base with the style merged in, a standalone checkpoint).
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel

from engine.model.adapters import ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE
from engine.model.checkpoint import load_hf_checkpoint, read_meta, save_checkpoint
from engine.model.config import DEFAULT_MODEL_DIR
from engine.style.card import CARD_FILE, base_fingerprint, write_card
from engine.style.forgetting import STOPPED as FORGETTING_LIMIT
from engine.style.forgetting import ForgettingCheck
from engine.training.distributed import DistributedError, ProcessGroup
from engine.style.lora import (Method, TrainError, add_lora, base_model, load_adapter_weights,
                               save_adapter, trainable_parameters)
from engine.style.replay import BASE_CORPUS_DIR, Batches, replay_rows, style_windows
from engine.style.run_checkpoint import clear_run_checkpoints, differences, read_run_checkpoint, save_run_checkpoint
from engine.style.schedule import Schedule
from engine.style.settings import STEP_CAP, StyleConfig
from engine.tokens.tokenizer import JamTokenizer
from engine.training.bits_per_second import music_fit
from engine.training.loop import LoopState, device_name, evaluate, evenly_spaced, lm_loss, restore_optimizer
from engine.training.progress import Progress

log = logging.getLogger(__name__)

RUN_DIR, BEST_DIR, MERGED_DIR = "run", "best", "merged"


class StyleExistsError(TrainError):
    """The style (or an unfinished run of it with other settings) is there and would be overwritten."""


@dataclass(frozen=True)
class StyleResult:
    style_dir: Path
    card: dict[str, Any]  # what card.json says (empty on the processes of rank > 0)
    steps: int
    stopped_because: str
    style_rows: int  # rows of the pianist's windows trained on, over every run of this style
    replay_rows: int  # rows replayed from the base
    rank: int = 0  # of this process under torchrun: only rank 0 wrote files

    @property
    def merged_dir(self) -> Path | None:
        return self.style_dir / MERGED_DIR if self.card.get("merged") else None


class StyleRun:
    """One style's training, from MIDI files to a style directory. `run()` does it all (call it
    once, on the thread that trains); `stop()`, from any thread, ends it at the next step with a
    checkpoint and the best adapter so far saved as the style.

    `on_step(fields)` gets each step's line (`step`, `loss`, `val_loss` (None between
    evaluations), `tokens_per_s`, `eta_s`) on every process; with `json_lines` rank 0 also
    prints it to stdout, else draws a bar on stderr.
    """

    def __init__(self, train_files: Sequence[Path], val_files: Sequence[Path], out_dir: Path,
                 config: StyleConfig | None = None, *, base: Path = DEFAULT_MODEL_DIR,
                 corpus: dict[str, Any] | None = None, resume: bool = False, force: bool = False,
                 merge: bool = False, json_lines: bool = False, base_corpus: Path | None = None,
                 on_step: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.train_files = [Path(p) for p in train_files]
        self.val_files = [Path(p) for p in val_files]
        self.out_dir, self.config, self.base = Path(out_dir), config or StyleConfig(), Path(base)
        self.corpus = dict(corpus or {})
        self.resume, self.force, self.merge, self.json_lines = resume, force, merge, json_lines
        self.base_corpus = Path(base_corpus) if base_corpus is not None else BASE_CORPUS_DIR
        self.on_step = on_step
        self.run_dir = self.out_dir / RUN_DIR
        self._stop = threading.Event()
        self._group = ProcessGroup()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """`stop()` was called."""
        return self._stop.is_set()

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> StyleResult:
        cfg = self.config
        if not self.train_files:
            raise TrainError("no training files: a style needs at least one file to learn from")
        if not self.val_files:
            raise TrainError("no validation file: a style needs at least 2 files, one held out for early stopping")
        if cfg.loop.threads:
            torch.set_num_threads(cfg.loop.threads)
        try:
            device = self._group.start(cfg.loop.device)
        except DistributedError as exc:
            raise TrainError(str(exc)) from None
        try:
            return self._run(device)
        finally:
            self._group.close()

    def _run(self, device: torch.device) -> StyleResult:
        cfg, group = self.config, self._group
        if cfg.loop.batch_size < group.world:
            raise TrainError(f"batch size {cfg.loop.batch_size} cannot be shared by {group.world} processes")
        if cfg.method is Method.QLORA and device.type == "cpu":
            log.warning("QLoRA on the CPU: its 4-bit base saves memory, not time; plain LoRA (--method lora) "
                        "is faster here and trains against the exact base")
        meta = read_meta(self.base)
        if cfg.examples.seq_len >= meta.config.max_len:
            raise TrainError(f"sequence length {cfg.examples.seq_len} does not fit the base's context "
                             f"({meta.config.max_len} tokens)")
        tokenizer = JamTokenizer.from_dict(meta.tokenizer)
        identity = {"config": cfg.identity(), "base": base_fingerprint(self.base),
                    "train_files": [p.name for p in self.train_files], "val_files": [p.name for p in self.val_files]}
        saved = self._plan(identity)  # raises on every process alike, before anything is written
        group.barrier()
        if group.main:
            self._prepare_dirs(saved is not None)
        group.barrier()

        train_x, _ = style_windows(self.train_files, tokenizer, cfg.examples, cfg.genre, train=True)
        val_x, _ = style_windows(self.val_files, tokenizer, cfg.examples, cfg.genre, train=False)
        if cfg.loop.eval_batches:
            val_x = evenly_spaced(val_x, cfg.loop.eval_batches * cfg.loop.batch_size)
        replay_x, base_val_x, replay_source = None, None, "nothing"
        checks_forgetting = cfg.max_forgetting is not None and (self.base_corpus / "manifest.json").is_file()
        if cfg.replay_share > 0 or checks_forgetting:
            rows, base_val_x, source = replay_rows(self.base, self.base_corpus, self.run_dir, tokenizer,
                                                   seq_len=cfg.examples.seq_len, samples=cfg.replay_samples,
                                                   seed=cfg.loop.seed, group=group, device=device,
                                                   json_lines=self.json_lines)
            if cfg.replay_share > 0:
                replay_x, replay_source = rows, source
        check = ForgettingCheck.of(base_val_x if checks_forgetting else None, cfg.max_forgetting,
                                   cfg.forgetting_windows, name=self.out_dir.name, base_corpus=self.base_corpus)
        batches = Batches(train_x, replay_x, cfg.loop.batch_size, cfg.replay_share, cfg.loop.seed)
        log.info("style %s: %d training windows, %d validation windows, %d of %d rows per batch replayed from %s",
                 self.out_dir.name, len(train_x), len(val_x), batches.replay_rows, cfg.loop.batch_size, replay_source)

        model, _ = base_model(self.base, cfg.method, device)
        model = add_lora(model, cfg.lora, seed=cfg.loop.seed)
        params = trainable_parameters(model)
        optimizer = torch.optim.AdamW(params, lr=cfg.loop.lr, betas=(0.9, 0.999), weight_decay=cfg.loop.weight_decay)
        state, rows = LoopState(history=[], runs=[]), {"style": 0, "replay": 0}
        if saved is not None:
            load_adapter_weights(model, Path(saved["dir"]))
            restore_optimizer(optimizer, load_file(str(Path(saved["dir"]) / "optimizer.safetensors")),
                              saved["optimizer"])
            state, rows = LoopState(**saved["loop"]), saved["rows"]
            log.info("resumed style %s at step %d (best val %.4f at %d)", self.out_dir.name, state.step,
                     state.best_val_loss, state.best_step)
        trained = model
        if group.world > 1:
            trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                              broadcast_buffers=False)
        self._loop(model, trained, optimizer, params, state, rows, batches, val_x, check, tokenizer.pad_id, identity)
        card = self._finish(tokenizer, state, rows, replay_source, check, device) if group.main else {}
        group.barrier()
        return StyleResult(self.out_dir, card, state.step, state.stopped_because or "", rows["style"],
                           rows["replay"], group.rank)

    def _plan(self, identity: dict[str, Any]) -> dict[str, Any] | None:
        """The saved checkpoint to resume from (None: a new run); raises when the style is there
        and neither `resume` nor `force` says what to do with it."""
        name, out = self.out_dir.name, self.out_dir
        if self.force:
            return None
        saved = read_run_checkpoint(self.run_dir)
        finished = (out / CARD_FILE).is_file() or (out / ADAPTER_WEIGHTS_FILE).is_file()
        if finished and not self.resume:
            raise StyleExistsError(f"style {name} already exists in {out} (--resume trains it on, --force replaces it)")
        if saved is not None and saved["identity"] != identity:
            differ = ", ".join(differences(saved["identity"], identity))
            raise StyleExistsError(f"style {name} has a run in {out} with other settings ({differ}); "
                                   "--force starts over")
        if saved is None and (self.resume or finished):
            raise TrainError(f"nothing to resume: style {name} has no training checkpoint in {self.run_dir}")
        return saved

    def _prepare_dirs(self, resuming: bool) -> None:
        if self.force and self.out_dir.exists():
            log.warning("replacing style %s in %s", self.out_dir.name, self.out_dir)
            shutil.rmtree(self.out_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not resuming:
            clear_run_checkpoints(self.run_dir)
            shutil.rmtree(self.run_dir / BEST_DIR, ignore_errors=True)

    def _loop(self, model, trained, optimizer, params, state: LoopState, rows: dict[str, int], batches: Batches,
              val_x: np.ndarray, check: ForgettingCheck, pad_id: int, identity: dict[str, Any]) -> None:
        """Trains until the steps, the minutes, the early stop, the forgetting `check` or `stop()` end it."""
        loop, group = self.config.loop, self._group
        if state.stopped_because in ("early stop", FORGETTING_LIMIT) or state.step >= loop.max_steps:
            log.info("style %s finished training at step %d (%s)", self.out_dir.name, state.step, state.stopped_because)
            return
        if state.step == 0:  # the base itself (the adapters start at zero): the mark to beat
            state.best_val_loss = self._validate(model, val_x, pad_id)
            state.history.append({"step": 0, "val_loss": state.best_val_loss})
            if check.active:
                state.history[-1].update(check.begin(state, self._validate(model, check.windows, pad_id)))
            if group.main:
                save_adapter(model, self.run_dir / BEST_DIR, self.base)
            self._report({"step": 0, "loss": None, "val_loss": state.best_val_loss, "forgetting": state.best_forgetting,
                          "tokens_per_s": None, "eta_s": None}, None)
        state.stopped_because = None
        run = {"device": device_name(str(group.device)), "processes": group.world, "from_step": state.step,
               "to_step": state.step, "seconds": 0.0}
        state.runs = (state.runs or []) + [run]
        only_time = loop.max_steps >= STEP_CAP
        progress = (Progress(None if only_time else loop.max_steps, "train", json_lines=self.json_lines,
                             initial=state.step) if group.main else None)
        # With a time limit the learning rate anneals over the time (this run's and the earlier runs'
        # of this style), or over the steps when they end it sooner; each process reads the same clock.
        schedule = Schedule(loop, None if loop.max_minutes is None else state.elapsed_s + loop.max_minutes * 60,
                            steps_count=not only_time, name=self.out_dir.name)
        started, run_tokens, run_steps, elapsed_s = time.monotonic(), 0, 0, 0.0

        def trained_s() -> float:
            return state.elapsed_s + elapsed_s - run["seconds"]

        def lr_now() -> float:
            return schedule.lr(state, trained_s())

        model.train()
        try:
            while state.step < loop.max_steps:
                batch = batches.at(state.step)
                mine = group.shard(batch)
                longest = int((mine != pad_id).sum(axis=1).max())  # rows are right-padded: skip the pad columns
                mine = torch.from_numpy(mine[:, :longest].astype(np.int64))
                batch_tokens = int((batch[:, 1:] != pad_id).sum())
                for group_ in optimizer.param_groups:
                    group_["lr"] = lr_now()
                torch.manual_seed(loop.seed * 1_000_003 + state.step)  # dropout: the same on a resumed run
                loss, count = lm_loss(trained, mine, pad_id)
                # Each process's summed NLL over the whole batch's targets: DDP's mean of the
                # gradients is then the gradient of the batch's mean loss, as in one process.
                scaled = torch.nan_to_num(loss) * (count * group.world / max(1, batch_tokens))
                optimizer.zero_grad(set_to_none=True)
                scaled.backward()
                torch.nn.utils.clip_grad_norm_(params, loop.grad_clip)
                optimizer.step()
                state.step += 1
                state.tokens_seen += batch_tokens
                rows["style"] += batches.style_rows
                rows["replay"] += batches.replay_rows
                run_tokens += batch_tokens
                run_steps += 1
                loss_sum, elapsed_sum = group.sum(float(torch.nan_to_num(loss.detach())) * count,
                                                  time.monotonic() - started)
                train_loss, elapsed_s = loss_sum / max(1, batch_tokens), elapsed_sum / group.world
                out_of_time = loop.max_minutes is not None and elapsed_s / 60 >= loop.max_minutes
                stopping = group.any(out_of_time or self._stop.is_set())
                val = None
                if stopping or state.step % loop.eval_every == 0 or state.step == loop.max_steps:
                    val = self._validate(model, val_x, pad_id)
                    checked = check.judge(state, self._validate(model, check.windows, pad_id) if check.active else None)
                    if val < state.best_val_loss - 1e-4 and not state.evals_over_budget:
                        state.best_val_loss, state.best_step, state.evals_since_best = val, state.step, 0
                        state.best_forgetting = checked.get("forgetting")
                        if group.main:
                            save_adapter(model, self.run_dir / BEST_DIR, self.base)
                    else:
                        state.evals_since_best += 1
                    state.history.append({"step": state.step, "train_loss": train_loss, "val_loss": val, **checked})
                    if schedule.early_stop(state, trained_s()):
                        state.stopped_because = "early stop"
                    elif check.ends(state, loop.patience, self.out_dir.name):
                        state.stopped_because = FORGETTING_LIMIT
                    elif stopping:
                        state.stopped_because = "time limit" if out_of_time else "stopped"
                    elif state.step >= loop.max_steps:
                        state.stopped_because = "max steps"
                    state.elapsed_s += elapsed_s - run["seconds"]
                    run["seconds"], run["to_step"] = round(elapsed_s, 2), state.step
                    if group.main:
                        self._checkpoint(model, optimizer, state, rows, identity)
                per_step_s = elapsed_s / run_steps
                eta_s = (loop.max_steps - state.step) * per_step_s if not only_time else math.inf
                if loop.max_minutes is not None:
                    eta_s = min(eta_s, max(0.0, loop.max_minutes * 60 - elapsed_s))
                self._report({"step": state.step, "loss": round(train_loss, 5),
                              "val_loss": None if val is None else round(val, 5),
                              "forgetting": (state.history[-1].get("forgetting") if val is not None else None),
                              "tokens_per_s": round(run_tokens / elapsed_s, 1), "eta_s": round(eta_s, 1),
                              "lr": lr_now()}, progress)
                if state.stopped_because:
                    break
        finally:
            if progress is not None:
                progress.close()

    def _validate(self, model, val_x: np.ndarray, pad_id: int) -> float:
        """Mean NLL per target token (nats) on the validation windows, each process scoring its share."""
        shard = self._group.shard(val_x)
        count = int((shard[:, 1:] != pad_id).sum())
        mean = evaluate(model, shard, pad_id, self.config.loop.batch_size) if count else 0.0
        total_nll, total = self._group.sum(mean * count, count)
        return total_nll / max(1.0, total)

    def _report(self, line: dict[str, Any], progress: Progress | None) -> None:
        if self.on_step is not None:
            self.on_step(dict(line))
        if not self._group.main:
            return
        if progress is None:  # the evaluation before the first step
            if self.json_lines:
                print(json.dumps({"event": "train", **line}), flush=True)
            else:
                log.info("validation loss of the base: %.4f", line["val_loss"])
            return
        if not self.json_lines:
            fields = {k: v for k, v in line.items()
                      if k in ("loss", "tokens_per_s") or (k == "val_loss" and v is not None)}
            progress.update(1, **fields)
            return
        step = line.pop("step")
        progress.update(step - progress.done, **{k: (None if v == math.inf else v) for k, v in line.items()})

    def _checkpoint(self, model, optimizer, state: LoopState, rows: dict[str, int], identity: dict[str, Any]) -> None:
        save_run_checkpoint(self.run_dir, model, optimizer, self.base,
                            {"identity": identity, "loop": asdict(state), "rows": rows})

    def _finish(self, tokenizer: JamTokenizer, state: LoopState, rows: dict[str, int], replay_source: str,
                check: ForgettingCheck, device: torch.device) -> dict[str, Any]:
        """The best adapter becomes the style; measured against the base on the validation files."""
        cfg, out = self.config, self.out_dir
        for name in (ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE):
            shutil.copyfile(self.run_dir / BEST_DIR / name, out / (name + ".tmp"))
            os.replace(out / (name + ".tmp"), out / name)
        if state.best_step == 0:
            log.warning("style %s: no evaluation beat the base; the style is the base unchanged", out.name)
        base_hf, _ = load_hf_checkpoint(self.base)
        style_hf, _ = load_hf_checkpoint(self.base, adapter=out)
        fits = {which: music_fit(hf.to(device), tokenizer, self.val_files, batch_size=cfg.loop.batch_size)
                for which, hf in (("base", base_hf), ("style", style_hf))}
        figures = {which: {"nll_per_token": fit.nll_per_token, "bits_per_s": fit.bits_per_s}
                   for which, fit in fits.items()}
        if self.merge:
            save_checkpoint(out / MERGED_DIR, style_hf.to("cpu"), tokenizer.to_dict(),
                            model_card=f"# {out.name}\n\njamtui's base model with the style {out.name} merged in.\n")
        corpus = {k: v for k, v in self.corpus.items() if k not in ("files", "path")}
        card = {
            "style": out.name,
            "method": cfg.method.value,
            "corpus": {**corpus, "train_files": [p.name for p in self.train_files],
                       "val_files": [p.name for p in self.val_files]},
            "settings": json.loads(json.dumps(asdict(cfg), default=str)),
            "base_model": {"path": str(self.base), "fingerprint": base_fingerprint(self.base),
                           "tokenizer": tokenizer.fingerprint},
            "run": {"steps": state.step, "best_step": state.best_step, "stopped_because": state.stopped_because,
                    "minutes": round(state.elapsed_s / 60, 2), "seconds": round(state.elapsed_s, 1),
                    "device": (state.runs or [{}])[-1].get("device"), "runs": state.runs,
                    "tokens_seen": state.tokens_seen, "history": state.history},
            "replay": {"share": cfg.replay_share, "source": replay_source, "rows": rows["replay"],
                       "style_rows": rows["style"]},
            "forgetting": check.card(state),
            "validation": {"files": len(self.val_files), "windows": fits["base"].windows,
                           "music_s": fits["base"].music_s,
                           "loss_before": state.history[0]["val_loss"] if state.history else None,
                           "loss_best": state.best_val_loss, **figures},
            "adapter_bytes": (out / ADAPTER_WEIGHTS_FILE).stat().st_size,
            "merged": self.merge,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_card(out, card)
        log.info("style %s saved in %s: bits/s %s -> %s", out.name, out, figures["base"]["bits_per_s"],
                 figures["style"]["bits_per_s"])
        return card
