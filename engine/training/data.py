"""Training examples from the corpus: pieces -> players -> augmented time windows -> token arrays.

Each example is one window of about `window_s` seconds of music (the live context plus
what the model plays ahead), encoded as `BOS conditions notes...`, cut or padded to a
fixed length, so batches are plain (N, L) arrays of uint16.
"""
from __future__ import annotations

import json
import logging
import math
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.tokens.conditions import GENRES, conditions_from_notes
from engine.events import AI, PERFORMER, Note
from engine.training.augment import humanize, stretch, touch, transpose, transpose_bounds
from engine.training.midi_files import read_notes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExampleConfig:
    seq_len: int = 512  # tokens per example, inputs and targets share it (L + 1 stored)
    window_s: float = 12.0
    stride_s: float = 6.0
    copies: int = 2  # augmented passes over each training piece
    max_transpose: int = 5
    stretch_range: tuple[float, float] = (0.9, 1.1)
    # Touch: velocities scaled around 64 by a factor drawn from velocity_scale_range, then moved
    # by up to velocity_shift either way (off by default, as pre-training was).
    velocity_scale_range: tuple[float, float] = (1.0, 1.0)
    velocity_shift: float = 0.0
    # Each training window names a genre drawn at random instead of the piece's: what it learns
    # then holds under any genre a preset names (a style is a player, not a genre).
    any_genre: bool = False
    condition_drop_p: float = 0.3
    seed: int = 0


def genre_of(entry: dict[str, Any]) -> str:
    """The corpus piece's own genre tag, as one of the tokenizer's genres."""
    tag = str(entry.get("tags", {}).get("genre", "")).strip().lower().replace(" ", "-")
    if tag in GENRES:
        return tag
    if tag.startswith("classical"):
        return "classical-piano"
    if "jazz" in tag:
        return "jazz-comping"
    if "folk" in tag:
        return "folk"
    return "unknown"


def assign_players(tracks: list[list[Note]], rng: random.Random) -> list[Note]:
    """Split a piece between the two players so the model learns to answer either role.

    Two-hand pieces give one hand to each player (which one is random); several parts are
    dealt out at random, both players getting at least one; a single part is either all
    the AI's (solo playing) or split at its median pitch (bass vs melody).
    """
    tracks = [t for t in tracks if t]
    if not tracks:
        return []
    if len(tracks) == 1:
        notes = tracks[0]
        if rng.random() < 0.5:
            return [replace(n, player=AI) for n in notes]
        split = sorted(n.pitch for n in notes)[len(notes) // 2]
        return [replace(n, player=AI if n.pitch >= split else PERFORMER) for n in notes]
    players = [rng.choice((PERFORMER, AI)) for _ in tracks]
    if len(set(players)) == 1:
        players[rng.randrange(len(players))] = 1 - players[0]
    out = [replace(n, player=p) for track, p in zip(tracks, players) for n in track]
    out.sort(key=lambda n: (n.start_s, n.pitch))
    return out


def augment(notes: list[Note], source: str, cfg: ExampleConfig, rng: random.Random) -> list[Note]:
    low, high = transpose_bounds(notes)
    shift = rng.randint(max(-cfg.max_transpose, low), min(cfg.max_transpose, high))
    notes = transpose(notes, shift)
    notes = stretch(notes, rng.uniform(*cfg.stretch_range))
    if cfg.velocity_scale_range != (1.0, 1.0) or cfg.velocity_shift:
        notes = touch(notes, rng.uniform(*cfg.velocity_scale_range), rng.uniform(-cfg.velocity_shift, cfg.velocity_shift))
    if source == "score":  # grid timing and flat velocities: make them sound played
        notes = humanize(notes, rng)
    return notes


def piece_examples(path: Path, entry: dict[str, Any], tokenizer, cfg: ExampleConfig, *, train: bool,
                   seed: int) -> tuple[list[list[int]], float]:
    """Token windows of one piece, and the seconds of music they cover."""
    rng = random.Random(seed)
    tracks = read_notes(path)
    genre = genre_of(entry)
    out: list[list[int]] = []
    seconds = 0.0
    for _ in range(cfg.copies if train else 1):
        notes = assign_players(tracks, rng)
        if train:
            notes = augment(notes, entry.get("source", ""), cfg, rng)
        if not notes:
            continue
        end_s = max(n.end_s for n in notes)
        start_s = rng.uniform(0, cfg.stride_s) if train else 0.0
        while start_s < end_s - 1.0:
            window = [n for n in notes if start_s <= n.start_s < start_s + cfg.window_s]
            if len(window) >= 4:
                named = rng.choice(GENRES) if train and cfg.any_genre else genre
                conditions = conditions_from_notes(window, genre=named, span_s=cfg.window_s)
                ids = tokenizer.encode(window, start_s=start_s, end_s=start_s + cfg.window_s,
                                       conditions=conditions, drop_p=cfg.condition_drop_p if train else 0.0,
                                       rng=rng, keep_held=True)
                out.append(ids[: cfg.seq_len + 1])
                seconds += min(cfg.window_s, end_s - start_s)
            start_s += cfg.stride_s
    return out, seconds


def _worker(args) -> tuple[list[list[int]], float, str | None]:
    path, entry, tokenizer_dict, cfg, train, seed = args
    from engine.tokens.tokenizer import JamTokenizer

    try:
        tokenizer = JamTokenizer.from_dict(tokenizer_dict)
        examples, seconds = piece_examples(path, entry, tokenizer, cfg, train=train, seed=seed)
        return examples, seconds, None
    except Exception as exc:  # noqa: BLE001 - one broken piece is reported, not fatal
        return [], 0.0, f"{entry.get('id')}: {exc}"


def build_split(corpus_dir: Path, split: str, tokenizer, cfg: ExampleConfig, *, jobs: int = 2,
                progress=None) -> tuple[np.ndarray, dict[str, Any]]:
    """(examples (N, seq_len + 1) uint16 padded with pad_id, stats) for one corpus split."""
    manifest = json.loads((corpus_dir / "manifest.json").read_text())
    entries = [p for p in manifest["pieces"] if p["split"] == split]
    train = split == "train"
    tokenizer_dict = tokenizer.to_dict()
    jobs_args = [(corpus_dir / p["path"], p, tokenizer_dict, cfg, train, cfg.seed * 1_000_003 + i)
                 for i, p in enumerate(entries)]
    rows: list[list[int]] = []
    row_sources: list[str] = []
    seconds = 0.0
    failures: list[str] = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for entry, (examples, secs, error) in zip(entries, pool.map(_worker, jobs_args, chunksize=4)):
            rows += examples
            row_sources += [entry.get("source", "")] * len(examples)
            seconds += secs
            if error:
                failures.append(error)
            if progress is not None:
                progress.update(1, examples=len(rows))
    array = np.full((len(rows), cfg.seq_len + 1), tokenizer.pad_id, dtype=np.uint16)
    for i, ids in enumerate(rows):
        array[i, : len(ids)] = ids
    n_tokens = int((array != tokenizer.pad_id).sum())
    stats = {"split": split, "pieces": len(entries), "examples": len(rows), "tokens": n_tokens,
             "music_s": round(seconds, 1), "tokens_per_s": round(n_tokens / seconds, 2) if seconds else None,
             "failed": failures, "row_sources": row_sources}
    return array, stats


def parse_mix(text: str) -> dict[str, float]:
    """`hannds=0.6,score=0.3,mma_jazz=0.1` -> shares that sum to 1 (ValueError naming the bad part)."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            share = float(value) if sep else math.nan
        except ValueError:
            share = math.nan
        if not name or not math.isfinite(share) or share < 0:
            raise ValueError(f"--mix: {part!r} is not SOURCE=SHARE with a share >= 0")
        mix[name.strip()] = share
    total = sum(mix.values())
    if total <= 0:
        raise ValueError("--mix: the shares add up to 0")
    return {name: share / total for name, share in mix.items()}


def mix_sources(examples: np.ndarray, row_sources: list[str], mix: dict[str, float], seed: int = 0) -> np.ndarray:
    """The rows of `examples` resampled so each source makes up its share of them (the same
    number of rows in all): an expressive source can outweigh rendered scores without
    rebuilding the corpus. A source named in `mix` with no rows is an error."""
    sources = np.asarray(row_sources)
    missing = [name for name, share in mix.items() if share > 0 and not (sources == name).any()]
    if missing:
        raise ValueError(f"--mix: no examples from {', '.join(missing)} (sources here: {', '.join(sorted(set(row_sources)))})")
    rng = np.random.default_rng(seed)
    picks = []
    for name, share in mix.items():
        rows = np.flatnonzero(sources == name)
        want = round(share * len(examples))
        if want:
            picks.append(rng.choice(rows, size=want, replace=want > len(rows)))
    order = np.concatenate(picks)
    rng.shuffle(order)
    return examples[order]
