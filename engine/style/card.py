"""A style's card: `card.json` (the corpus, the settings, the run and the before/after figures on
the corpus's validation files) and a short `README.md` saying the same for a person."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CARD_FILE = "card.json"  # written last: its presence marks a finished style
README_FILE = "README.md"


def base_fingerprint(checkpoint: Path) -> str:
    """The first 16 hex digits of the sha256 of the checkpoint's weights: which base a style fits."""
    digest = hashlib.sha256()
    with open(Path(checkpoint) / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def read_card(style_dir: Path) -> dict[str, Any] | None:
    """The card of a finished style, or None when the style has none (yet)."""
    path = Path(style_dir) / CARD_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_card(style_dir: Path, card: dict[str, Any]) -> Path:
    """Write README.md, then card.json (atomically); returns the card's path."""
    style_dir = Path(style_dir)
    (style_dir / README_FILE).write_text(readme(card), encoding="utf-8")
    tmp = style_dir / (CARD_FILE + ".tmp")
    tmp.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, style_dir / CARD_FILE)
    return style_dir / CARD_FILE


def readme(card: dict[str, Any]) -> str:
    corpus, settings, run, fit = card["corpus"], card["settings"], card["run"], card["validation"]
    base, style = fit["base"], fit["style"]
    change = (style["bits_per_s"] / base["bits_per_s"] - 1) if base.get("bits_per_s") else None
    change_text = f" ({change:+.1%})" if change is not None else ""
    lora, loop = settings["lora"], settings["loop"]
    method = f"{card['method']} (rank {lora['rank']}, alpha {lora['alpha']:g}, on {', '.join(lora['target_modules'])})"
    length = (f"{run['steps']} steps (best at {run['best_step']}; stopped: {run['stopped_because']}), "
              f"{run['minutes']:.1f} min on {run['device']}")
    batch = (f"{loop['batch_size']} x {settings['examples']['seq_len']} tokens, {settings['replay_share']:.0%} "
             f"replayed from {card['replay']['source']}, lr {loop['lr']:g}")
    forgetting = _forgetting_row(card.get("forgetting") or {})
    merged = "; `merged/` is the base with the style merged in, a standalone checkpoint" if card.get("merged") else ""
    source = (f"the corpus **{corpus['name']}** ({corpus.get('hours')} h of MIDI)" if corpus.get("name")
              else "MIDI files")
    return f"""# Style {card['style']}

A LoRA adapter for jamtui's base model, trained by `jamtui train` on {source}
({len(corpus['train_files'])} training files, {len(corpus['val_files'])} validation files).
Use it with `jamtui jam --style {card['style']}`.

| | |
|---|---|
| method | {method} |
| base | {card['base_model']['path']} (weights {card['base_model']['fingerprint']}) |
| run | {length} |
| batch | {batch} |
| validation bits per second of music | base {base['bits_per_s']} -> style **{style['bits_per_s']}**{change_text} |
| validation NLL (nats/token) | base {base['nll_per_token']} -> style {style['nll_per_token']} |
{forgetting}
Figures on the corpus's validation files ({fit['music_s']} s of music, {fit['windows']} windows); the base
with the adapter merged is what plays. Files: `adapter_config.json` and `adapter_model.safetensors`
(peft, safetensors only){merged}.
"""


def _forgetting_row(forgetting: dict[str, Any]) -> str:
    """The table's forgetting row: how much the style raised the base's loss on its own validation
    windows, against the limit (empty for a card from before the check)."""
    if not forgetting:
        return ""
    if not forgetting.get("checked"):
        why = "turned off" if forgetting.get("max") is None else "no base corpus: scripts/build-corpus"
        return f"| forgetting | not checked ({why}) |\n"
    limit = f", at most {forgetting['max']:.1%}" if forgetting.get("max") is not None else ""
    return (f"| forgetting | the base's loss on {forgetting['windows']} of its validation windows "
            f"{forgetting['best']:+.1%}{limit} |\n")
