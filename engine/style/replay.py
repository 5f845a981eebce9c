"""A style run's rows: the pianist's windows, the base's rows replayed against forgetting, their mix per step."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from engine.midi.midifile import MidiFileError
from engine.model.checkpoint import load_checkpoint
from engine.model.sampling import Sampling, generate
from engine.style.card import base_fingerprint
from engine.training.distributed import ProcessGroup
from engine.style.lora import TrainError
from engine.tokens.tokenizer import JamTokenizer
from engine.training.data import ExampleConfig, piece_examples
from engine.training.pretrain import load_examples

log = logging.getLogger(__name__)

# scripts/build-corpus writes it, replayed when it is there; its token windows are cached where
# scripts/pretrain caches them, in the folder beside it ("pretrain").
BASE_CORPUS_DIR = Path(__file__).resolve().parents[2] / "data" / "corpus"


class Batches:
    """The rows of each step's batch: `replay_rows` replayed from the base, the rest the pianist's.
    A step's batch depends only on (seed, step), so a resumed run and every process of a
    distributed run draw the same global batch; each process trains on its own rows of it."""

    def __init__(self, train_x: np.ndarray, replay_x: np.ndarray | None, batch_size: int, replay_share: float,
                 seed: int) -> None:
        self.train_x, self.replay_x, self.seed = train_x, replay_x, seed
        self.replay_rows = round(replay_share * batch_size) if replay_x is not None and len(replay_x) else 0
        self.style_rows = batch_size - self.replay_rows
        if self.style_rows <= 0:
            raise TrainError(f"batch size {batch_size} leaves no row for the corpus after replay")

    def at(self, step: int) -> np.ndarray:
        """(batch_size, L + 1) uint16: the replayed rows first."""
        rng = np.random.default_rng([self.seed, step])
        style = self.train_x[rng.integers(0, len(self.train_x), self.style_rows)]
        if not self.replay_rows:
            return style
        replay = self.replay_x[rng.integers(0, len(self.replay_x), self.replay_rows)]
        return np.concatenate([replay, style])


def style_windows(files: Sequence[Path], tokenizer: JamTokenizer, ecfg: ExampleConfig, genre: str, *,
                  train: bool) -> tuple[np.ndarray, float]:
    """(windows (N, seq_len + 1) uint16 padded, seconds of music) of the pianist's files, as in pre-training."""
    rows: list[list[int]] = []
    seconds = 0.0
    for i, path in enumerate(files):
        entry = {"id": path.stem, "source": "performance", "tags": {"genre": genre}}
        try:
            examples, secs = piece_examples(path, entry, tokenizer, ecfg, train=train, seed=ecfg.seed * 1_000_003 + i)
        except (MidiFileError, OSError) as exc:
            raise TrainError(f"{'training' if train else 'validation'} file {path}: {exc}") from exc
        rows += examples
        seconds += secs
    if not rows:
        raise TrainError(f"no {'training' if train else 'validation'} windows in {len(files)} file(s): each needs "
                         f"at least 4 notes in {ecfg.window_s:g} s")
    array = np.full((len(rows), ecfg.seq_len + 1), tokenizer.pad_id, dtype=np.uint16)
    for i, ids in enumerate(rows):
        array[i, : len(ids)] = ids
    return array, seconds


def replay_rows(base: Path, base_corpus: Path, run_dir: Path, tokenizer: JamTokenizer, *, seq_len: int,
                samples: int, seed: int, group: ProcessGroup, device: torch.device,
                json_lines: bool) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(rows, validation rows, where they came from) replayed against forgetting: the base's
    pre-training windows (and its validation windows, which measure forgetting) when its corpus is
    built, else `samples` pieces the base model writes from its own conditions (made once by rank 0,
    cached in `run_dir`; no validation rows). Every process of `group` must call it."""
    if (base_corpus / "manifest.json").is_file():
        ecfg = ExampleConfig(seq_len=seq_len, seed=seed)
        for turn in ("first", "rest"):  # rank 0 builds the cache, then the others read it
            if group.main == (turn == "first"):
                arrays = load_examples(base_corpus, base_corpus.parent / "pretrain", tokenizer, ecfg,
                                       json_lines=json_lines, jobs=2)
            group.barrier()
        return arrays[0], arrays[1], f"the base corpus ({base_corpus})"
    path = run_dir / f"replay-{tokenizer.fingerprint}-{base_fingerprint(base)}-n{samples}-L{seq_len}-s{seed}.npy"
    if group.main and not path.is_file():
        rows = base_samples(base, tokenizer, samples, seq_len, seed, device)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, rows, allow_pickle=False)
        os.replace(tmp, path)
    group.barrier()
    return np.load(path, allow_pickle=False), None, "pieces the base model wrote"


def base_samples(base: Path, tokenizer: JamTokenizer, n: int, seq_len: int, seed: int,
                 device: torch.device | str = "cpu") -> np.ndarray:
    """(n, seq_len + 1) uint16: pieces the base model writes after BOS, choosing its own
    conditions, sampled from its plain distribution (what replay keeps it close to)."""
    model = load_checkpoint(base, expected_tokenizer=tokenizer.to_dict(), device=device, warmup=False).model
    allowed = torch.ones(tokenizer.vocab_size, dtype=torch.bool)
    allowed[[tokenizer.pad_id, tokenizer.bos_id]] = False
    generator = torch.Generator().manual_seed(seed)
    rows = np.full((n, seq_len + 1), tokenizer.pad_id, dtype=np.uint16)
    started = time.monotonic()
    for i in range(n):
        ids = generate(model, model.new_cache(seq_len + 1), [tokenizer.bos_id], seq_len, Sampling(temperature=1.0),
                       allowed=allowed, generator=generator, stop=lambda out: out[-1] == tokenizer.eos_id,
                       feed_last=False)
        rows[i, : 1 + len(ids)] = [tokenizer.bos_id, *ids]
    log.info("the base model wrote %d replay pieces of up to %d tokens in %.1f s", n, seq_len,
             time.monotonic() - started)
    return rows
