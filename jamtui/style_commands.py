"""The command line's `jamtui style list|show`: the styles trained from the performer's playing
(LoRA adapters in the user data dir), with their cards; `jamtui.cli` registers the parsers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.style.card import CARD_FILE
from jamtui.errors import UserError


def add_parsers(sub) -> None:
    style = sub.add_parser("style", help="list and show your trained styles (LoRA adapters)")
    style_sub = style.add_subparsers(dest="style_command", metavar="ACTION", required=True)
    listing = style_sub.add_parser("list", help="your styles: rank, targets, size, corpus")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show = style_sub.add_parser("show", help="one style: its adapter and its card (settings, figures)")
    show.add_argument("name", help="a style name (see `jamtui style list`) or an adapter directory")
    show.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_style(args) -> int:
    from engine.model.errors import AdapterError

    try:
        if args.style_command == "list":
            return _list(args.json)
        return _show(args.name, args.json)
    except AdapterError as exc:
        raise UserError(str(exc)) from exc


def _list(as_json: bool) -> int:
    from engine.style.listing import list_styles
    from engine.user_dirs import styles_dir

    rows: list[dict[str, Any]] = [
        {"name": entry.name, "path": str(entry.path), "corpus": entry.corpus, "bits_per_s": entry.style_bits_per_s,
         "base_bits_per_s": entry.base_bits_per_s, "rank": entry.rank, "target_modules": list(entry.target_modules),
         "size_bytes": entry.size_bytes, "problem": entry.problem}
        for entry in list_styles()]
    if as_json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"no styles yet in {styles_dir()} (train one: jamtui train --corpus NAME --name STYLE)")
        return 0
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        if row["problem"] is not None:
            print(f"{row['name']:<{width}}  (invalid: {row['problem']})")
            continue
        corpus = f"  corpus {row['corpus']}" if row["corpus"] else ""
        fit = (f"  bits/s {row['base_bits_per_s']:g} -> {row['bits_per_s']:g}"
               if row["bits_per_s"] is not None and row["base_bits_per_s"] is not None else "")
        print(f"{row['name']:<{width}}  rank {row['rank']:<3} {_size(row['size_bytes']):>8}  "
              f"{','.join(row['target_modules'])}{corpus}{fit}")
    return 0


def _show(name: str, as_json: bool) -> int:
    from engine.model.adapters import find_style, read_adapter, style_names
    from engine.style.listing import style_card
    from engine.user_dirs import styles_dir

    path = Path(name).expanduser()
    if not ("/" in name or path.is_dir()):
        found = find_style(name)
        if found is None:
            known = ", ".join(style_names()) or f"none yet in {styles_dir()}"
            raise UserError(f"no style named {name!r} (known styles: {known})")
        path = found
    adapter = read_adapter(path)  # checks the tensors too
    card, card_problem = style_card(path)
    info = {
        "name": path.name, "path": str(path.resolve()), "rank": adapter.config.rank, "alpha": adapter.config.alpha,
        "scale": round(adapter.config.scale, 6), "use_rslora": adapter.config.use_rslora,
        "target_modules": list(adapter.config.target_modules), "modules": len(adapter.pairs),
        "whole_modules": list(adapter.config.modules_to_save),
        "params": adapter.n_params, "size_bytes": adapter.size_bytes, "card": card or None,
    }
    if card_problem is not None:
        info["card_problem"] = card_problem
    if as_json:
        print(json.dumps(info))
        return 0
    print(f"style {info['name']}: {info['path']}")
    print(f"  adapter: rank {info['rank']}, alpha {info['alpha']:g} (scale {info['scale']:g}"
          f"{', rsLoRA' if info['use_rslora'] else ''}), {info['modules']} modules, {info['params']:,} parameters, "
          f"{_size(info['size_bytes'])}")
    print(f"  targets: {', '.join(info['target_modules'])}")
    if info["whole_modules"]:
        print(f"  trained whole: {', '.join(info['whole_modules'])}")
    if card_problem is not None:
        print(f"  card: {card_problem}")
    elif not card:
        print(f"  card: none ({CARD_FILE} missing)")
    else:
        print("  card:")
        for line in _card_lines(card):
            print(f"    {line}")
    return 0


def _card_lines(card: dict[str, Any]) -> list[str]:
    """What a person reads of the card (the whole of it: --json); parts it lacks are left out."""
    def part(key: str) -> dict[str, Any]:
        value = card.get(key)
        return value if isinstance(value, dict) else {}

    from engine.style.listing import card_figure

    lines = []
    corpus, run, fit = part("corpus"), part("run"), part("validation")
    if corpus:
        files = (f"; {len(corpus['train_files'])} training, {len(corpus['val_files'])} validation files"
                 if isinstance(corpus.get("train_files"), list) and isinstance(corpus.get("val_files"), list) else "")
        hours = f", {corpus['hours']:.2f} h" if isinstance(corpus.get("hours"), (int, float)) else ""
        lines.append(f"corpus: {corpus.get('name', '?')}{hours}{files}")
    if "method" in card:
        lines.append(f"method: {card['method']}")
    if run:
        lines.append(f"run: {run.get('steps', '?')} steps (best at {run.get('best_step', '?')}, stopped: "
                     f"{run.get('stopped_because', '?')}), {run.get('minutes', '?')} min on {run.get('device', '?')}")
    base, style = card_figure(card, "base"), card_figure(card, "style")
    if base is not None and style is not None:
        change = f" ({style / base - 1:+.1%})" if base else ""
        lines.append(f"validation bits/s: base {base:g} -> style {style:g}{change}")
    elif fit:
        lines.append(f"validation: {json.dumps(fit)[:200]}")
    for key in ("merged", "created"):
        if key in card:
            lines.append(f"{key}: {card[key]}")
    shown = {"corpus", "method", "run", "validation", "merged", "created"}
    rest = sorted(key for key, value in card.items() if key not in shown and not isinstance(value, (dict, list)))
    lines += [f"{key}: {card[key]}" for key in rest]
    return lines


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "-"
    return f"{size_bytes / 1e6:.1f} MB" if size_bytes >= 1e5 else f"{size_bytes / 1e3:.1f} kB"
