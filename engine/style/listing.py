"""The trained styles as every face lists them (`jamtui style list`, the styles panel): each one's
corpus, adapter rank, targets and size, the validation figures of its card, or why it cannot play."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.model.adapters import ADAPTER_WEIGHTS_FILE, read_adapter_config, style_names
from engine.model.errors import AdapterError
from engine.style.card import CARD_FILE, read_card
from engine.user_dirs import styles_dir


@dataclass(frozen=True)
class StyleEntry:
    name: str
    path: Path
    corpus: str | None
    rank: int | None
    target_modules: tuple[str, ...]
    size_bytes: int | None
    base_bits_per_s: float | None  # on the corpus's validation files, from the card
    style_bits_per_s: float | None
    card: dict[str, Any]  # empty when the style has none, or an unreadable one
    problem: str | None  # why the adapter cannot play (its card's problems are `card_problem`)
    card_problem: str | None


def list_styles(directory: Path | None = None) -> list[StyleEntry]:
    """The styles in `directory` (default: the user's styles dir), by name."""
    directory = styles_dir() if directory is None else directory
    return [style_entry(directory / name) for name in style_names(directory)]


def style_entry(path: Path) -> StyleEntry:
    card, card_problem = style_card(path)
    corpus = card.get("corpus")
    try:
        config = read_adapter_config(path)
        rank, targets, problem = config.rank, tuple(config.target_modules), None
    except AdapterError as exc:
        rank, targets, problem = None, (), exc.problem
    weights = path / ADAPTER_WEIGHTS_FILE
    return StyleEntry(path.name, path, corpus.get("name") if isinstance(corpus, dict) else corpus, rank, targets,
                      weights.stat().st_size if weights.is_file() and problem is None else None,
                      card_figure(card, "base"), card_figure(card, "style"), card, problem, card_problem)


def style_card(path: Path) -> tuple[dict[str, Any], str | None]:
    """The style's card (empty when it has none) and what was wrong with it, if anything."""
    try:
        card = read_card(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"unreadable {CARD_FILE}: {' '.join(str(exc).split())}"
    if card is None:
        return {}, None
    if not isinstance(card, dict):
        return {}, f"{CARD_FILE} is not a JSON object"
    return card, None


def card_figure(card: dict[str, Any], which: str) -> float | None:
    """Validation bits per second of music of the base or the style ("base", "style"), from the card."""
    fit = card.get("validation")
    value = fit.get(which, {}).get("bits_per_s") if isinstance(fit, dict) and isinstance(fit.get(which), dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
