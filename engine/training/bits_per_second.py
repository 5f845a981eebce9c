"""Bits per second of music: how well a model predicts a set of MIDI files. The figure that
compares across models, corpora and tokenizers (NLL per token would reward writing more tokens
for the same music), after Anticipatory Music Transformer's bits/s. Split by file and by kind of
token (note lengths, pitches, velocities...) and by how much of its window the model has read,
it says where one model predicts better than another."""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from engine.model.checkpoint import CheckpointError, load_hf_checkpoint
from engine.model.config import DEFAULT_MODEL_DIR
from engine.tokens.tokenizer import CONDITION, DURATION, PITCH, PROGRAM, SHIFT, VELOCITY, JamTokenizer
from engine.training.data import ExampleConfig, piece_examples

WINDOW_S = 8.0  # short enough that a dense window fits the model's context whole
# What each kind of token says, in the order a note writes them (BOS, EOS and the rest: "other").
KIND_NAMES = {CONDITION: "conditions", SHIFT: "time shifts", PROGRAM: "players", PITCH: "pitches",
              VELOCITY: "velocities", DURATION: "note lengths"}
_GROUPS = (*KIND_NAMES.values(), "other")
# Context bins: a token predicted after reading 1-64 tokens of its window, 65-256, 257 up to the
# length of the windows the models were trained on, and past it (the model's positions it never
# saw in training). Does a style's gain hold once the model has heard the player in the window?
CONTEXT_EDGES = (64, 256, ExampleConfig.seq_len)


@dataclass(frozen=True)
class FileFit:
    """One file's share of a `MusicFit`."""

    file: str
    windows: int
    tokens: int
    music_s: float
    bits_per_s: float


@dataclass(frozen=True)
class ContextFit:
    """The tokens predicted after reading `first`-`last` tokens of their window: their share of
    a `MusicFit`'s bits/s (the bins' shares add up to it) and their mean NLL."""

    first: int
    last: int
    tokens: int
    nll_per_token: float  # nats
    bits_per_s: float


@dataclass(frozen=True)
class MusicFit:
    files: int
    windows: int
    truncated: int  # windows longer than the model's context: their tail is not scored
    tokens: int
    music_s: float
    nll_per_token: float  # nats
    bits_per_s: float
    per_file: tuple[FileFit, ...] = ()  # each file's bits/s: does every one move, or one a lot?
    by_kind: dict[str, float] = field(default_factory=dict)  # bits/s of each kind of token; they sum to bits_per_s
    by_context: tuple[ContextFit, ...] = ()  # by tokens read before each prediction (CONTEXT_EDGES)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def music_windows(files: Sequence[Path], tokenizer, *, max_len: int, window_s: float = WINDOW_S,
                  entries: Sequence[dict] | None = None, seed: int = 0) -> tuple[np.ndarray, float, int]:
    """(token windows (N, L) padded, seconds of music they cover, how many were cut at max_len).

    Windows do not overlap, are not augmented and carry the conditions the live engine
    computes from the notes; each piece splits its hands or parts between the two players
    the same way on every call (seeded), so two models see the same tokens.
    """
    array, seconds, truncated, _ = _windows(files, tokenizer, max_len=max_len, window_s=window_s, entries=entries,
                                            seed=seed)
    return array, float(sum(seconds)), truncated


def _windows(files: Sequence[Path], tokenizer, *, max_len: int, window_s: float, entries: Sequence[dict] | None,
             seed: int) -> tuple[np.ndarray, list[float], int, np.ndarray]:
    """`music_windows`, with the seconds of each file and the file (index) of each window."""
    cfg = ExampleConfig(seq_len=10 * max_len, window_s=window_s, stride_s=window_s, copies=1, seed=seed)
    rows: list[list[int]] = []
    owners: list[int] = []
    seconds: list[float] = []
    truncated = 0
    for i, path in enumerate(files):
        entry = dict(entries[i]) if entries is not None else {"source": "performance", "tags": {}}
        windows, secs = piece_examples(Path(path), entry, tokenizer, cfg, train=False, seed=seed * 1_000_003 + i)
        for ids in windows:
            if len(ids) > max_len:
                truncated += 1
            rows.append(ids[:max_len])
            owners.append(i)
        seconds.append(secs)
    width = max((len(r) for r in rows), default=1)
    array = np.full((len(rows), width), tokenizer.pad_id, dtype=np.int64)
    for i, ids in enumerate(rows):
        array[i, : len(ids)] = ids
    return array, seconds, truncated, np.asarray(owners, dtype=np.int64)


@torch.no_grad()
def music_fit(model, tokenizer, files: Sequence[Path], *, window_s: float = WINDOW_S,
              entries: Sequence[dict] | None = None, batch_size: int = 8, seed: int = 0) -> MusicFit:
    """How well `model` (a transformers causal LM) predicts `files`: NLL per token and bits per
    second of music, every non-overlapping `window_s` window scored once; and each file's."""
    max_len = int(model.config.max_position_embeddings)
    windows, seconds, truncated, owners = _windows(files, tokenizer, max_len=max_len, window_s=window_s,
                                                   entries=entries, seed=seed)
    was_training = model.training
    model.eval()
    row_nll = np.zeros(len(windows))
    row_tokens = (windows[:, 1:] != tokenizer.pad_id).sum(axis=1)
    group_of = torch.tensor([_GROUPS.index(KIND_NAMES.get(k, _GROUPS[-1])) for k in tokenizer.kinds])
    group_nll = torch.zeros(len(_GROUPS), dtype=torch.float64)
    edges = [e for e in CONTEXT_EDGES if e < max_len - 1] + [max_len - 1]
    context_nll = torch.zeros(len(edges), dtype=torch.float64)
    context_tokens = torch.zeros(len(edges), dtype=torch.float64)
    # Sorted by length, batches waste little on padding.
    order = np.argsort((windows != tokenizer.pad_id).sum(axis=1))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = windows[rows]
        batch = batch[:, : int((batch != tokenizer.pad_id).sum(axis=1).max())]
        row_nll[rows], batch_groups, batch_context = _row_nll(model, torch.from_numpy(batch), tokenizer.pad_id,
                                                              group_of, len(_GROUPS), edges)
        group_nll += batch_groups
        context_nll += batch_context[0]
        context_tokens += batch_context[1]
    model.train(was_training)
    total_nll, total_tokens, total_s = float(row_nll.sum()), int(row_tokens.sum()), float(sum(seconds))
    by_kind = {name: _bits_per_s(nll, total_s) for name, nll in zip(_GROUPS, group_nll.tolist()) if nll > 0}
    by_context = tuple(ContextFit(first=first, last=last, tokens=int(n), nll_per_token=round(nll / n, 5),
                                  bits_per_s=_bits_per_s(nll, total_s))
                       for first, last, nll, n in zip([1, *(e + 1 for e in edges[:-1])], edges,
                                                      context_nll.tolist(), context_tokens.tolist()) if n > 0)
    per_file = tuple(FileFit(file=str(path), windows=int((owners == i).sum()), tokens=int(row_tokens[owners == i].sum()),
                             music_s=round(seconds[i], 3), bits_per_s=_bits_per_s(float(row_nll[owners == i].sum()), seconds[i]))
                     for i, path in enumerate(files))
    return MusicFit(files=len(files), windows=len(windows), truncated=truncated, tokens=total_tokens,
                    music_s=round(total_s, 1), nll_per_token=round(total_nll / max(1, total_tokens), 5),
                    bits_per_s=_bits_per_s(total_nll, total_s), per_file=per_file, by_kind=by_kind,
                    by_context=by_context)


def _row_nll(model, batch: torch.Tensor, pad_id: int, group_of: torch.Tensor, groups: int,
             edges: Sequence[int]) -> tuple[np.ndarray, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Each row's summed next-token NLL (nats) over its non-pad targets, the batch's NLL summed
    by the targets' group (`group_of`: token id -> one of `groups`), and its NLL and targets
    counted by tokens read before each (the bin whose last is `edges[i]`, the one after the one before)."""
    device = next(model.parameters()).device
    batch = batch.to(device)
    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(input_ids=inputs, attention_mask=(inputs != pad_id).long()).logits.float()
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    scored = (targets != pad_id).cpu().double()
    nll = nll.cpu().double() * scored
    by_group = torch.bincount(group_of[targets.cpu()].flatten(), weights=nll.flatten(), minlength=groups)
    read = torch.arange(1, targets.shape[1] + 1)  # tokens read before each target
    bins = torch.bucketize(read, torch.tensor(list(edges))).expand(targets.shape).flatten()
    by_context = (torch.bincount(bins, weights=nll.flatten(), minlength=len(edges)),
                  torch.bincount(bins, weights=scored.flatten(), minlength=len(edges)))
    return nll.sum(dim=1).numpy(), by_group, by_context


def _bits_per_s(nll: float, seconds: float) -> float:
    return round(nll * math.log2(math.e) / seconds, 2) if seconds > 0 else math.nan


def corpus_split(corpus: Path, split: str) -> tuple[list[Path], list[dict]]:
    """The files of one split of a built pre-training corpus, with their manifest entries."""
    manifest_path = corpus / ("holdout/manifest.json" if split == "holdout" else "manifest.json")
    manifest = json.loads(manifest_path.read_text())
    entries = [p for p in manifest["pieces"] if p["split"] == split]
    base = manifest_path.parent
    return [base / p["path"] for p in entries], entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bits per second of music of checkpoints on a corpus split.")
    parser.add_argument("models", type=Path, nargs="*", help="checkpoint directories (default: the shipped model)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--split", default="holdout", choices=("train", "val", "holdout"))
    parser.add_argument("--window-s", type=float, default=WINDOW_S)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        files, entries = corpus_split(args.corpus, args.split)
    except (OSError, ValueError, KeyError) as exc:
        print(f"model-fit: error: {args.corpus}: not a built corpus ({exc})", file=sys.stderr)
        return 2
    if not files:
        print(f"model-fit: error: {args.corpus}: no {args.split} pieces", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = {}
    for path in args.models or [DEFAULT_MODEL_DIR]:
        try:
            model, meta = load_hf_checkpoint(path)
        except CheckpointError as exc:
            print(f"model-fit: error: {exc}", file=sys.stderr)
            return 2
        rows[str(path)] = music_fit(model, JamTokenizer.from_dict(meta.tokenizer), files, window_s=args.window_s,
                                    entries=entries).to_dict()
    if args.json:
        print(json.dumps({"corpus": str(args.corpus), "split": args.split, "models": rows}, indent=1))
        return 0
    print(f"{args.corpus} {args.split}: {len(files)} pieces, windows of {args.window_s:g} s")
    print(f"{'model':40} {'bits/s':>8} {'nats/token':>11} {'tokens':>9} {'music s':>8} {'cut':>4}")
    for name, fit in rows.items():
        print(f"{name[-40:]:40} {fit['bits_per_s']:8.2f} {fit['nll_per_token']:11.4f} {fit['tokens']:9d} "
              f"{fit['music_s']:8.0f} {fit['truncated']:4d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
