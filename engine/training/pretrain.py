"""Pre-train the default model on the corpus: `python -m engine.training.pretrain` (or scripts/pretrain).

Resumable: examples are cached by tokenizer fingerprint, the loop checkpoints every
evaluation, and the best model so far is exported (safetensors + tokenizer + model card)
each time validation improves, so a run can be done in pieces across sessions.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import platform
import sys
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from engine.model.checkpoint import load_hf_checkpoint, new_hf_model, save_checkpoint
from engine.model.config import DEFAULT_MODEL_DIR, ModelConfig
from engine.tokens.tokenizer import JamTokenizer
from engine.training.distributed import DistributedError, ProcessGroup
from engine.training.data import ExampleConfig, build_split, mix_sources, parse_mix
from engine.training.loop import LoopConfig, LoopState, evaluate, train
from engine.training.progress import Progress

log = logging.getLogger(__name__)
DEFAULT_OUT = DEFAULT_MODEL_DIR
TRAINING_STATE = "training_state.json"


def load_examples(corpus: Path, work: Path, tokenizer, ecfg: ExampleConfig, *, json_lines: bool, jobs: int):
    """Train/val arrays, built once per tokenizer fingerprint and example config."""
    key = f"{tokenizer.fingerprint}-L{ecfg.seq_len}-w{ecfg.window_s:g}-t{ecfg.stride_s:g}-c{ecfg.copies}-s{ecfg.seed}"
    cache = work / f"examples-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    arrays, stats = {}, {}
    manifest = json.loads((corpus / "manifest.json").read_text())
    sources = {}
    for split in ("train", "val"):
        npy, meta, rows = cache / f"{split}.npy", cache / f"{split}.json", cache / f"{split}-sources.json"
        if npy.exists() and meta.exists() and rows.exists():
            arrays[split] = np.load(npy, allow_pickle=False)
            stats[split] = json.loads(meta.read_text())
            sources[split] = json.loads(rows.read_text())
            continue
        n_pieces = sum(1 for p in manifest["pieces"] if p["split"] == split)
        progress = Progress(n_pieces, f"tokenize-{split}", json_lines=json_lines)
        arrays[split], stats[split] = build_split(corpus, split, tokenizer, ecfg, jobs=jobs, progress=progress)
        sources[split] = stats[split].pop("row_sources")
        progress.close()
        np.save(npy, arrays[split], allow_pickle=False)
        meta.write_text(json.dumps(stats[split], indent=1))
        rows.write_text(json.dumps(sources[split]))
    return arrays["train"], arrays["val"], stats, sources


def model_card(mcfg: ModelConfig, state: LoopState, stats: dict, manifest: dict, loop: LoopConfig,
               full_val_nll: float | None = None) -> str:
    """The model card; bits per second from the full validation split when measured, else the subset."""
    tps = stats["val"]["tokens_per_s"]
    val_nll = full_val_nll if full_val_nll is not None else state.best_val_loss
    which = "the whole validation split" if full_val_nll is not None else f"{loop.eval_batches} validation batches"
    bits_per_s = val_nll * math.log2(math.e) * tps
    minutes = state.elapsed_s / 60
    stop = state.stopped_because or "still training"
    mix = stats.get("mix") or {}
    sources = "\n".join(
        f"| {name} | {s.get('files')} | {s.get('hours')} | {s.get('notes')} | "
        f"{f'{mix.get(name, 0):.0%}' if mix else 'as built'} |" for name, s in manifest["sources"].items()
    )
    return f"""# jamtui default model

A small Llama-style decoder (transformers `LlamaForCausalLM`) that continues two-player
piano MIDI, trained from scratch by `scripts/pretrain` on the corpus of `scripts/build-corpus`
(see docs/corpus.md). Tokens: docs/tokens.md.

| | |
|---|---|
| parameters | {mcfg.n_params():,} |
| layers / width / heads | {mcfg.n_layer} / {mcfg.n_embd} / {mcfg.n_head} |
| context | {mcfg.max_len} tokens (trained on {stats['train']['examples']:,} windows of <= {loop_seq(stats)} tokens) |
| steps | {state.step:,} (best at {state.best_step:,}; stopped: {stop}), batch {loop.batch_size}, {state.tokens_seen:,} tokens seen |
| schedule | AdamW, lr {loop.lr:g} (warm-up {loop.warmup_steps}, cosine to {loop.min_lr:g} at step {loop.max_steps:,}), weight decay {loop.weight_decay:g}, early stop after {loop.patience} evaluations without a better validation loss |
| training time | {minutes:.0f} min: {runs_text(state)} |
| validation NLL | {val_nll:.4f} nats/token on {which} ({stats['val']['tokens']:,} tokens, {stats['val']['pieces']} pieces); {state.best_val_loss:.4f} on the {loop.eval_batches}-batch subset used for early stopping |
| validation bits per second of music | **{bits_per_s:.1f}** (= NLL x log2(e) x {tps} tokens/s) |

## Data

| source | files | hours | notes | share of training windows |
|---|---|---|---|---|
{sources}

The hold-out performer set (docs/corpus.md) was not used.

## History

Validation loss at each evaluation: {', '.join(f"{h['step']}: {h['val_loss']:.3f}" for h in state.history[-12:])}
"""


def _from_export(out: Path, mcfg: ModelConfig, model) -> LoopState | None:
    """Continue from the exported (committed) model when this machine has no run checkpoint."""
    state_path = out / TRAINING_STATE
    if not state_path.exists():
        return None

    exported, meta = load_hf_checkpoint(out)
    if meta.config != mcfg:
        log.info("exported model has another shape (%s); starting a new run", meta.config)
        return None
    model.load_state_dict(exported.state_dict())
    state = read_state(state_path)
    state.step = state.best_step  # the export is the best model, not the last step
    state.stopped_because = None
    log.info("continuing from the exported model at step %d (val %.4f)", state.step, state.best_val_loss)
    return state


def runs_text(state: LoopState) -> str:
    runs = state.runs or []
    if not runs:
        return f"on this {platform.machine()} machine"
    return "; ".join(f"steps {r['from_step']:,}-{r['to_step']:,} on {r['device']} ({r['seconds'] / 60:.1f} min)" for r in runs)


def read_state(path: Path) -> LoopState:
    """The LoopState saved beside an export (extra keys, such as full_val_loss, ignored)."""
    known = {f.name for f in fields(LoopState)}
    return LoopState(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})


def loop_seq(stats: dict) -> str:
    return str(stats.get("seq_len", "512"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--work", type=Path, default=Path("data/pretrain"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--ff", type=int, default=704)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--minutes", type=float, help="stop (resumably) after this many minutes")
    parser.add_argument("--window-s", type=float, default=12.0, help="seconds of music per training window")
    parser.add_argument("--stride-s", type=float, default=6.0, help="seconds between window starts")
    parser.add_argument("--copies", type=int, default=2, help="augmented passes over the training pieces")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    parser.add_argument("--eval-batches", type=int, default=16, help="validation batches per evaluation")
    parser.add_argument("--reset-patience", action="store_true",
                        help="go on after an early stop, e.g. to anneal the learning rate with a larger --steps")
    parser.add_argument("--fresh", action="store_true", help="start from random weights, not from the exported model")
    parser.add_argument("--init", type=Path, metavar="DIR",
                        help="start from this checkpoint's weights (same shape) with a new schedule, e.g. to "
                             "continue the shipped model on a rebalanced --mix")
    parser.add_argument("--mix", metavar="SOURCE=SHARE,...",
                        help="resample the examples so each corpus source has this share, e.g. "
                             "hannds=0.6,score=0.25,mma_jazz=0.15 (default: as the corpus has them)")
    parser.add_argument("--json", action="store_true", help="one JSON line per step instead of bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


    if not (args.corpus / "manifest.json").exists():
        print(f"pretrain: error: {args.corpus}/manifest.json not found (run scripts/build-corpus first)", file=sys.stderr)
        return 2
    tokenizer = JamTokenizer()
    ecfg = ExampleConfig(seq_len=args.seq_len, copies=args.copies, window_s=args.window_s, stride_s=args.stride_s)
    try:
        mix = parse_mix(args.mix) if args.mix else None
    except ValueError as exc:
        print(f"pretrain: error: {exc}", file=sys.stderr)
        return 2
    group = ProcessGroup()  # alone, or one of several processes under torchrun
    try:
        device = group.start(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    except DistributedError as exc:
        print(f"pretrain: error: {exc}", file=sys.stderr)
        return 2
    try:
        return _pretrain(args, group, str(device), tokenizer, ecfg, mix)
    finally:
        group.close()


def _pretrain(args, group: ProcessGroup, device: str, tokenizer, ecfg: ExampleConfig, mix: dict | None) -> int:
    if not group.main:
        group.barrier()  # the first process tokenizes the corpus into the cache; the others then read it
    train_x, val_x, stats, row_sources = load_examples(args.corpus, args.work, tokenizer, ecfg,
                                                       json_lines=args.json and group.main, jobs=args.jobs)
    if group.main:
        group.barrier()
    if mix:
        try:  # the validation split is mixed too: early stopping then weighs the sources as training does
            train_x = mix_sources(train_x, row_sources["train"], mix, seed=0)
            val_mix = {k: v for k, v in mix.items() if k in set(row_sources["val"])}
            if val_mix:
                val_x = mix_sources(val_x, row_sources["val"], val_mix, seed=1)
        except ValueError as exc:
            print(f"pretrain: error: {args.corpus}: {exc}", file=sys.stderr)
            return 2
        stats["mix"] = mix
    for split, array in (("train", train_x), ("val", val_x)):
        if len(array) == 0:
            print(f"pretrain: error: {args.corpus}: no {split} examples (pieces shorter than --window-s?)", file=sys.stderr)
            return 2
    stats["seq_len"] = args.seq_len
    log.info("examples: train %s, val %s", stats["train"], stats["val"])
    mcfg = ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=args.layers, n_embd=args.width, n_head=args.heads,
                       n_kv_head=args.heads, intermediate_size=args.ff, max_len=1024)

    loop = LoopConfig(max_steps=args.steps, batch_size=args.batch, lr=args.lr, warmup_steps=args.warmup, eval_every=args.eval_every,
                      eval_batches=args.eval_batches, patience=args.patience, max_minutes=args.minutes,
                      threads=args.threads, device=device, reset_patience=args.reset_patience)
    run_dir = args.work / f"run-{tokenizer.fingerprint}-{args.layers}x{args.width}"
    (run_dir).mkdir(parents=True, exist_ok=True)
    if group.main:
        (run_dir / "config.json").write_text(json.dumps({"model": mcfg.to_dict(), "loop": asdict(loop),
                                                         "examples": asdict(ecfg)}, indent=1))
    manifest = json.loads((args.corpus / "manifest.json").read_text())

    def export(model, state: LoopState) -> None:
        card = model_card(mcfg, state, stats, manifest, loop)
        save_checkpoint(args.out, copy.deepcopy(model).to("cpu", torch.float32), tokenizer.to_dict(), model_card=card)
        (args.out / TRAINING_STATE).write_text(json.dumps(asdict(state)))

    model = new_hf_model(mcfg, seed=0)
    resuming = (run_dir / "ckpt" / "state.json").exists()
    if args.init and not resuming:
        start, _ = load_hf_checkpoint(args.init, expected_tokenizer=tokenizer.to_dict())
        model.load_state_dict(start.state_dict())
        initial = LoopState(history=[])
        log.info("starting from the weights of %s", args.init)
    else:
        initial = _from_export(args.out, mcfg, model) if not (resuming or args.fresh) else None
    state = train(model, train_x, val_x, tokenizer.pad_id, loop, run_dir / "ckpt", json_lines=args.json,
                  on_best=export, initial_state=initial, group=group)
    if not group.main:
        return 0
    # The export is the best model: measure it on the whole validation split for the card.

    best, _ = load_hf_checkpoint(args.out)
    full_val = evaluate(best.to(device), val_x, tokenizer.pad_id, args.batch)
    saved = read_state(args.out / TRAINING_STATE)
    saved.stopped_because, saved.runs, saved.elapsed_s = state.stopped_because, state.runs, state.elapsed_s
    saved.step, saved.history, saved.tokens_seen = state.step, state.history, state.tokens_seen
    (args.out / "README.md").write_text(model_card(mcfg, saved, stats, manifest, loop, full_val))
    (args.out / TRAINING_STATE).write_text(json.dumps({**asdict(saved), "full_val_loss": full_val}))
    bits = full_val * math.log2(math.e) * stats["val"]["tokens_per_s"]
    print(json.dumps({"event": "pretrain-done", "step": state.step, "stopped": state.stopped_because,
                      "best_val_loss": state.best_val_loss, "best_step": state.best_step, "full_val_loss": full_val,
                      "val_bits_per_s": round(bits, 2), "val_tokens_per_s": stats["val"]["tokens_per_s"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
