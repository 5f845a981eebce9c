"""`jamtui eval`: base against style on a pianist's held-out files (engine.offline.style_eval)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from jamtui import arguments as arg
from jamtui.errors import UserError

MIDI_SUFFIXES = (".mid", ".midi")


def add_parsers(sub) -> None:
    ev = sub.add_parser("eval", help="how well a style fits: base vs style on held-out MIDI files")
    ev.add_argument("--style", required=True, help="the style: NAME[:WEIGHT] or an adapter directory")
    ev.add_argument("--heldout", nargs="+", type=Path, required=True, metavar="PATH",
                    help="MIDI files or folders of the pianist's playing that the style was not trained on")
    ev.add_argument("--base", type=Path, help="the base checkpoint (default: the one the style was trained on)")
    ev.add_argument("--base-corpus", type=Path, default=Path("data/corpus"),
                    help="a built pre-training corpus: its validation split measures forgetting "
                         "(default data/corpus; skipped when not built)")
    ev.add_argument("--seed", type=arg.seed, default=0, help=f"random seed: 0 to {arg.MAX_SEED} (default 0)")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def heldout_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
            if not found:
                raise UserError(f"--heldout: {path}: no .mid files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"--heldout: {path}: no such file or folder")
    return files


def cmd_eval(args) -> int:
    from engine.midi.midifile import MidiFileError
    from engine.model.adapters import find_style
    from engine.model.config import DEFAULT_MODEL_DIR
    from engine.offline.style_eval import evaluate_style
    from engine.style.card import read_card

    if len(args.style) != 1:
        raise UserError("--style: eval compares one style with the base; give one NAME[:WEIGHT]")
    ref, weight = args.style[0]
    style = Path(ref) if Path(ref).is_dir() else find_style(ref)
    files = heldout_files(args.heldout)
    card = read_card(style) or {}
    base = args.base or Path(card.get("base_model", {}).get("path") or DEFAULT_MODEL_DIR)
    if not base.is_dir():
        raise UserError(f"--base: {base}: no such checkpoint directory")
    trained_on = {Path(p).name for p in card.get("corpus", {}).get("train_files", [])}
    overlap = sorted(p.name for p in files if p.name in trained_on)
    if overlap:
        print(f"jamtui eval: warning: {', '.join(overlap)} may be in the style's training files", file=sys.stderr)

    def on_step(stage: str, done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{stage}: {done}/{total}   ", end="", file=sys.stderr, flush=True)

    try:
        result = evaluate_style(style, weight, files, base=base, base_corpus=args.base_corpus, seed=args.seed,
                                on_step=on_step)
    except MidiFileError as exc:
        raise UserError(f"--heldout: {exc}") from None
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(table(result))
    return 0


def table(r: dict) -> str:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:+.1%}"

    def num(x: float | None, digits: int = 3) -> str:
        return "-" if x is None else f"{x:.{digits}f}"

    lines = [f"style {r['style']} (weight {r['weight']:g}) against base {r['base']}",
             f"held out: {len(r['heldout_files'])} files, {r['fit']['base']['music_s']:.0f} s of music, "
             f"{r['prompts']} prompts of {r['prompt_s']:g} s continued for {r['continuation_s']:g} s",
             "",
             f"{'':28}{'base':>10}{'style':>10}{'change':>10}",
             f"{'bits per second of music':28}{num(r['base_bits_per_s'], 1):>10}{num(r['style_bits_per_s'], 1):>10}"
             f"{pct(r['bits_change']):>10}"]
    if len(r["per_file"]) > 1:
        for f in r["per_file"]:
            lines.append(f"{'  ' + Path(f['file']).name[-26:]:28}{num(f['base_bits_per_s'], 1):>10}"
                         f"{num(f['style_bits_per_s'], 1):>10}{pct(f['bits_change']):>10}")
    lines.append("  by kind of token")  # where the bits go, and which kind the style predicts better
    for k in r["by_kind"]:
        lines.append(f"{'    ' + k['kind']:28}{num(k['base_bits_per_s'], 1):>10}{num(k['style_bits_per_s'], 1):>10}"
                     f"{pct(k['bits_change']):>10}")
    lines.append("  by tokens of the window read")  # where the style's gain lies: before the context tells
    for c in r["by_context"]:
        lines.append(f"{'    ' + str(c['first']) + '-' + str(c['last']):28}{num(c['base_bits_per_s'], 1):>10}"
                     f"{num(c['style_bits_per_s'], 1):>10}{pct(c['bits_change']):>10}")
    for key in r["overlap"]["base"]:
        b, s = r["overlap"]["base"][key], r["overlap"]["style"][key]
        change = pct(s / b - 1) if b and s is not None else "-"
        lines.append(f"{'overlap ' + key.removeprefix('oa_'):28}{num(b):>10}{num(s):>10}{change:>10}")
    forgetting = r["forgetting"]
    lines.append("")
    if forgetting is None:
        lines.append("forgetting: not measured (build the base corpus: scripts/build-corpus)")
    else:
        v = r["base_val_bits_per_s"]
        lines.append(f"forgetting: base corpus validation {v['base']:.1f} -> {v['style']:.1f} bits/s ({pct(forgetting)})")
    return "\n".join(lines)
