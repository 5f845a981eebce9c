"""The `jamtui train` command: a style (LoRA or QLoRA adapters of the model) from a corpus of your
playing; `jamtui.cli` registers it, `engine.style.train.StyleRun` does the work."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from jamtui import arguments as arg
from jamtui.errors import UserError

_STYLE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
_POSITIVE = arg.number(above=0)
_POSITIVE_WHOLE = arg.number(at_least=1, whole=True)
_SHARE = arg.number(at_least=0, below=1)


def add_parsers(sub) -> None:
    """Add the `train` subcommand to the `jamtui` subparsers `sub`."""
    train = sub.add_parser("train", help="learn a style from a corpus of your playing (LoRA or QLoRA)",
                           description="Fine-tune the model on a corpus (`jamtui corpus add`) into a style "
                                       "you can jam with (`jamtui jam --style NAME`). Ctrl-C stops after the step "
                                       "under way and saves the best so far as the style (a second Ctrl-C quits "
                                       "at once); --resume trains on. Runs under torchrun too.")
    train.add_argument("--corpus", required=True, metavar="NAME", help="the corpus to learn from")
    train.add_argument("--name", required=True, metavar="STYLE", help="the style to write (letters, digits, -_.)")
    train.add_argument("--method", choices=("lora", "qlora"), default="lora",
                       help="lora (fp32 base; fastest on a CPU) or qlora (4-bit base; saves GPU memory)")
    train.add_argument("--rank", type=_POSITIVE_WHOLE, default=8, help="LoRA rank: 1 or more (default 8)")
    train.add_argument("--alpha", type=_POSITIVE, help="LoRA alpha: above 0 (default: 2 x rank)")
    train.add_argument("--lr", type=_POSITIVE, default=6e-4, help="peak learning rate: above 0 (default 6e-4)")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=_POSITIVE,
                        help="train for this long: above 0 (early stop may end it sooner)")
    length.add_argument("--steps", type=_POSITIVE_WHOLE, help="train for at most this many steps: 1 or more "
                                                             "(default 1000)")
    train.add_argument("--device", help="cpu or cuda (default: cuda when there is one)")
    train.add_argument("--batch", type=_POSITIVE_WHOLE, default=8, help="windows per step: 1 or more (default 8)")
    train.add_argument("--seq-len", type=arg.number(at_least=2, whole=True), default=512,
                       help="tokens per window: 2 or more (default 512)")
    train.add_argument("--replay", type=_SHARE, default=0.25, metavar="SHARE",
                       help="share of each batch replayed from the base, against forgetting: 0 to below 1 "
                            "(default 0.25)")
    train.add_argument("--max-forgetting", type=arg.number(at_least=0, below=1), default=0.04, metavar="SHARE",
                       help="the most the style may raise the base's loss on its own validation windows, checked "
                            "at each evaluation when the base corpus is built: an adapter past it is not kept "
                            "(0.04 = 4%%, the default; 0 does not check)")
    train.add_argument("--transpose", type=arg.number(at_least=0, at_most=12, whole=True), default=5,
                       metavar="SEMITONES", help="augmentation: transpose up to this far either way, 0 to 12 "
                                                 "(default 5)")
    train.add_argument("--stretch", type=_SHARE, default=0.1,
                       help="augmentation: tempo stretch up to this fraction either way, 0 to below 1 "
                            "(default 0.1)")
    train.add_argument("--velocity-scale", type=_SHARE, default=0.15, metavar="SHARE",
                       help="augmentation: velocities spread or narrowed around 64 by up to this fraction, 0 to "
                            "below 1 (default 0.15)")
    train.add_argument("--velocity-shift", type=arg.number(at_least=0, at_most=32), default=6.0, metavar="STEPS",
                       help="augmentation: velocities moved by up to this much either way, 0 to 32 (default 6)")
    train.add_argument("--copies", type=_POSITIVE_WHOLE, default=8,
                       help="augmented passes over the training files: 1 or more (default 8)")
    train.add_argument("--seed", type=arg.seed, default=0, help=f"random seed: 0 to {arg.MAX_SEED} (default 0)")
    train.add_argument("--threads", type=_POSITIVE_WHOLE,
                       help="torch CPU threads: 1 or more (default: torch's choice; 1 is often faster on a busy "
                            "machine)")
    train.add_argument("--model", type=Path, help="the base checkpoint (default: the shipped model)")
    train.add_argument("--merge", action="store_true",
                       help="also write the base with the style merged in (STYLE/merged, a standalone checkpoint)")
    train.add_argument("--resume", action="store_true", help="train an existing style further")
    train.add_argument("--force", action="store_true", help="replace an existing style of that name")
    train.add_argument("--json", action="store_true", help="one JSON line per step on stdout, and one with the result")


def _check(args) -> None:
    if not _STYLE_NAME.fullmatch(args.name):
        raise UserError(f"--name: {args.name!r} cannot name a style: use letters, digits, '-', '_' and '.', "
                        "not starting with '.'")
    if args.resume and args.force:
        raise UserError("--resume and --force contradict each other: one trains the style on, the other replaces it")


def cmd_train(args) -> int:
    import torch

    from engine.model.config import DEFAULT_MODEL_DIR
    from engine.style.corpus import CorpusError, open_corpus
    from engine.style.lora import LoraSettings, Method, TrainError
    from engine.style.settings import STEP_CAP, StyleConfig
    from engine.style.train import StyleRun
    from engine.user_dirs import styles_dir

    _check(args)
    try:
        corpus = open_corpus(args.corpus)
        train_files, val_files, summary = corpus.files("train"), corpus.files("val"), corpus.summary()
    except CorpusError as exc:
        raise UserError(str(exc)) from exc
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    defaults = StyleConfig()
    try:
        config = StyleConfig(
            method=Method(args.method),
            lora=LoraSettings(rank=args.rank, alpha=args.alpha or 2.0 * args.rank),
            examples=replace(defaults.examples, seq_len=args.seq_len, copies=args.copies, max_transpose=args.transpose,
                             stretch_range=(1 - args.stretch, 1 + args.stretch),
                             velocity_scale_range=(1 - args.velocity_scale, 1 + args.velocity_scale),
                             velocity_shift=args.velocity_shift, seed=args.seed),
            loop=replace(defaults.loop, lr=args.lr, min_lr=args.lr / 10, batch_size=args.batch, seed=args.seed,
                         max_steps=args.steps or (STEP_CAP if args.minutes else defaults.loop.max_steps),
                         max_minutes=args.minutes, device=device, threads=args.threads),
            replay_share=args.replay,
            max_forgetting=args.max_forgetting or None,
        )
        run = StyleRun(train_files, val_files, styles_dir() / args.name, config, base=args.model or DEFAULT_MODEL_DIR,
                       corpus=summary, resume=args.resume, force=args.force, merge=args.merge, json_lines=args.json)
        with _ctrl_c_stops(run, args.name):
            result = run.run()
    except TrainError as exc:
        raise UserError(str(exc)) from exc
    except KeyboardInterrupt:
        print(f"jamtui train: interrupted; the same command resumes style {args.name} from its last checkpoint",
              file=sys.stderr)
        return 130
    if result.rank != 0:  # under torchrun, rank 0 speaks for the run
        return 0
    fit = result.card["validation"]
    done = {"event": "train-done", "style": args.name, "path": str(result.style_dir), "steps": result.steps,
            "stopped_because": result.stopped_because, "loss_before": fit["loss_before"], "loss_best": fit["loss_best"],
            "base_bits_per_s": fit["base"]["bits_per_s"], "style_bits_per_s": fit["style"]["bits_per_s"],
            "forgetting": result.card["forgetting"]["best"],
            "minutes": result.card["run"]["minutes"], "replay_rows": result.replay_rows,
            "style_rows": result.style_rows,
            "merged": str(result.merged_dir) if result.merged_dir else None}
    if args.json:
        print(json.dumps(done), flush=True)
    elif result.stopped_because == "stopped":
        print(f"jamtui train: stopped at step {result.steps}; style {args.name} in {result.style_dir} is the best "
              f"so far (validation bits/s {done['base_bits_per_s']} -> {done['style_bits_per_s']}); "
              f"--resume trains on; play it with: jamtui jam --style {args.name}")
    else:
        print(f"jamtui train: style {args.name} in {result.style_dir}: {result.steps} steps "
              f"({result.stopped_because}), "
              f"validation bits/s {done['base_bits_per_s']} -> {done['style_bits_per_s']}"
              f"{_forgetting(done['forgetting'])}; play it with: jamtui jam --style {args.name}")
    return 0


def _forgetting(share: float | None) -> str:
    return "" if share is None else f", forgetting {100 * share:+.1f}% of the base"


@contextlib.contextmanager
def _ctrl_c_stops(run, name: str):
    """While the run trains, the first Ctrl-C asks it to stop after the step under way (it then saves
    a checkpoint and its best adapter as the style); a second one quits at once, as before, and the
    next `--resume` goes on from the last checkpoint. Off the main thread Ctrl-C is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum, _frame):
        if run.stopping:
            raise KeyboardInterrupt
        run.stop()
        # Straight to the descriptor: the progress bar may be halfway through a write to sys.stderr.
        os.write(2, f"\njamtui train: stopping style {name} after this step and saving it "
                    "(Ctrl-C again quits at once)\n".encode())

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
