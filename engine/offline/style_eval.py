"""How well a style fits its pianist (`jamtui eval`): bits per second of music on their held-out
files with the base model and with the style merged, how close the two models' continuations of
held-out prompts come to what the pianist really played next (MGEval-style overlapping areas),
and how much of the base the style forgot (bits/s on the base corpus's validation split)."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from engine.events import AI, Note
from engine.midi.notes import CHORD_S
from engine.model.checkpoint import load_hf_checkpoint
from engine.model.sampling import Sampling
from engine.model.transformer import fast_from_hf
from engine.offline.continuation import continue_notes
from engine.offline.music_figures import by_onset
from engine.offline.music_overlap import BINS, FEATURES, overlapping_area, segment_features
from engine.tokens.tokenizer import JamTokenizer
from engine.training.bits_per_second import corpus_split, music_fit
from engine.training.loop import evenly_spaced
from engine.training.midi_files import read_notes

log = logging.getLogger(__name__)

PROMPT_S = 8.0  # the pianist's own playing the model hears ...
CONTINUATION_S = 8.0  # ... and how long it goes on, compared with what he played next
PROMPT_EVERY_S = 20.0  # a prompt may start every 20 s of each held-out file ...
MAX_PROMPTS_PER_FILE = 12  # ... and at most this many, spread evenly over the whole performance
MIN_PROMPT_NOTES = 8
# One note per onset group: how many notes sound together (1 = a line, 3+ = chords).
POLYPHONY_BINS = np.arange(0, 12) + 0.5
_SPACING_S = 1000.0  # prompts laid apart on one time line so no 4 s segment mixes two of them
SAMPLING = Sampling(temperature=0.95, top_p=0.95, repetition_penalty=1.0)


@dataclass(frozen=True)
class Prompt:
    file: Path
    at_s: float
    prompt: tuple[Note, ...]
    real: tuple[Note, ...]  # what the pianist played in the CONTINUATION_S after `at_s`


def prompts_of(files: Sequence[Path]) -> list[Prompt]:
    """Prompts from each held-out file: PROMPT_S of his playing (all his notes, as the AI's, so
    the model continues a solo) before points PROMPT_EVERY_S apart, with what came next. Of a
    long file's points, MAX_PROMPTS_PER_FILE spread evenly from its start to its end, so the
    figure hears the whole performance, not its opening minutes."""
    out = []
    for path in files:
        notes = by_onset([n for track in read_notes(path) for n in track])
        if not notes:
            continue
        end_s = notes[-1].start_s
        found = []
        at_s = PROMPT_S
        while at_s + CONTINUATION_S <= end_s:
            prompt = [Note(n.start_s, min(n.end_s, at_s), n.pitch, n.velocity, AI) for n in notes
                      if at_s - PROMPT_S <= n.start_s < at_s]
            real = [n for n in notes if at_s <= n.start_s < at_s + CONTINUATION_S]
            if len(prompt) >= MIN_PROMPT_NOTES and real:
                found.append(Prompt(Path(path), at_s, tuple(prompt), tuple(real)))
            at_s += PROMPT_EVERY_S
        out += [found[i] for i in evenly_spaced(np.arange(len(found)), MAX_PROMPTS_PER_FILE)]
    return out


def polyphony_values(notes: Sequence[Note]) -> np.ndarray:
    """Notes per onset group (onsets within CHORD_S of the group's first)."""
    sizes: list[int] = []
    first_s = -math.inf
    for n in by_onset(notes):
        if n.start_s - first_s > CHORD_S:
            sizes.append(0)
            first_s = n.start_s
        sizes[-1] += 1
    return np.asarray(sizes, dtype=float)


def overlap(real: Sequence[Note], generated: Sequence[Note]) -> dict[str, float | None]:
    """`oa_<feature>` for the MGEval-style features and polyphony, and `oa_mean` over those found."""
    fr, fg = segment_features(real), segment_features(generated)
    out = {f"oa_{name}": overlapping_area(fg[name], fr[name], BINS[name]) for name in FEATURES}
    out["oa_polyphony"] = overlapping_area(polyphony_values(generated), polyphony_values(real), POLYPHONY_BINS)
    found = [v for v in out.values() if v is not None]
    out["oa_mean"] = float(np.mean(found)) if found else None
    return out


def continuation_overlap(model, tokenizer: JamTokenizer, prompts: Sequence[Prompt], *, seed: int = 0,
                         on_step: Callable[[int, int], None] | None = None) -> dict[str, float | None]:
    """The overlapping areas of everything `model` played after the prompts against everything
    the pianist played there, pooled over the prompts (each laid on its own stretch of time)."""
    real: list[Note] = []
    generated: list[Note] = []
    for i, p in enumerate(prompts):
        notes, _ = continue_notes(model, tokenizer, list(p.prompt), CONTINUATION_S, sampling=SAMPLING,
                                  seed=seed + i, guided=False)
        shift_s = i * _SPACING_S - p.at_s
        real += [_shifted(n, shift_s) for n in p.real]
        generated += [_shifted(n, shift_s) for n in notes if n.start_s < p.at_s + CONTINUATION_S]
        if on_step is not None:
            on_step(i + 1, len(prompts))
    return overlap(real, generated)


def _shifted(n: Note, shift_s: float) -> Note:
    return Note(n.start_s + shift_s, n.end_s + shift_s, n.pitch, n.velocity, n.player)


def evaluate_style(style: Path, weight: float, heldout: Sequence[Path], *, base: Path,
                   base_corpus: Path | None = None, seed: int = 0,
                   on_step: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """The base against the style (merged at `weight`) on the pianist's `heldout` files:
    `base_bits_per_s`, `style_bits_per_s`, `bits_change` (style over base, minus 1), the same
    for each file (`per_file`), each kind of token (`by_kind`: note lengths, pitches...) and by
    how much of its window the models had read (`by_context`: does the gain hold once the base
    has heard the player in the window?),
    `base_overlap`, `style_overlap` (oa_mean of their continuations against the real ones, each
    feature under `overlap`), and `forgetting` (the base corpus's validation bits/s with the
    style over without, minus 1; None when `base_corpus` is not built)."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    base_hf, meta = load_hf_checkpoint(base)
    style_hf, _ = load_hf_checkpoint(base, adapters=[(style, weight)])
    tokenizer = JamTokenizer.from_dict(meta.tokenizer)
    step = on_step or (lambda *_: None)
    fits = {}
    for name, model in (("base", base_hf), ("style", style_hf)):
        fits[name] = music_fit(model, tokenizer, heldout)
        step(f"bits/s {name}", 1, 1)
    prompts = prompts_of(heldout)
    overlaps = {}
    for name, model in (("base", base_hf), ("style", style_hf)):
        live = fast_from_hf(model)
        overlaps[name] = continuation_overlap(live, tokenizer, prompts, seed=seed,
                                              on_step=lambda done, total, name=name: step(f"continue {name}", done, total))
    forgetting, base_val = None, None
    if base_corpus is not None and (base_corpus / "manifest.json").exists():
        files, entries = corpus_split(base_corpus, "val")
        base_val = {name: music_fit(model, tokenizer, files, entries=entries).bits_per_s
                    for name, model in (("base", base_hf), ("style", style_hf))}
        forgetting = round(base_val["style"] / base_val["base"] - 1, 4)
    return {
        "style": str(style), "weight": weight, "base": str(base), "heldout_files": [str(p) for p in heldout],
        "base_bits_per_s": fits["base"].bits_per_s, "style_bits_per_s": fits["style"].bits_per_s,
        "bits_change": round(fits["style"].bits_per_s / fits["base"].bits_per_s - 1, 4),
        "per_file": [{"file": b.file, "music_s": b.music_s, "base_bits_per_s": b.bits_per_s,
                      "style_bits_per_s": s.bits_per_s, "bits_change": round(s.bits_per_s / b.bits_per_s - 1, 4)}
                     for b, s in zip(fits["base"].per_file, fits["style"].per_file)],
        "by_kind": [{"kind": kind, "base_bits_per_s": bits, "style_bits_per_s": fits["style"].by_kind.get(kind, 0.0),
                     "bits_change": round(fits["style"].by_kind.get(kind, 0.0) / bits - 1, 4)}
                    for kind, bits in fits["base"].by_kind.items()],
        "by_context": [{"first": b.first, "last": b.last, "tokens": b.tokens, "base_nll_per_token": b.nll_per_token,
                        "style_nll_per_token": s.nll_per_token, "base_bits_per_s": b.bits_per_s,
                        "style_bits_per_s": s.bits_per_s, "bits_change": round(s.bits_per_s / b.bits_per_s - 1, 4)}
                       for b, s in zip(fits["base"].by_context, fits["style"].by_context)],
        "prompts": len(prompts), "prompt_s": PROMPT_S, "continuation_s": CONTINUATION_S,
        "base_overlap": _round(overlaps["base"]["oa_mean"]), "style_overlap": _round(overlaps["style"]["oa_mean"]),
        "overlap": {name: {k: _round(v) for k, v in o.items()} for name, o in overlaps.items()},
        "forgetting": forgetting,
        "base_val_bits_per_s": base_val,
        "fit": {name: fit.to_dict() for name, fit in fits.items()},
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
