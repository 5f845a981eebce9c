"""The music bench: every preset simulated against real performances the model never trained
on, each duet scored by `review`, the figures averaged per preset beside the performers' own
column, so a change to the model, sampling, injection or turn-taking is judged on music."""
from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Sequence

from engine.model.cache import ModelCache
from engine.offline.review import Figures, join_performances, read_performance, self_figures
from engine.presets.files import load_preset
from engine.presets.schema import resolve_adapters, resolve_model_path

log = logging.getLogger(__name__)

# The figures a table shows first, in this order (issue 9's table); the rest follow.
HEADLINE = ("hammer", "key_compat", "in_scale", "density", "answers", "short_answers", "motif_reuse", "copy_rate",
            "register", "chord_notes", "on_pulse", "velocity_follow", "oa_mean")
SELF = "performer"
_MODELS = ModelCache()  # one load per process, whatever the number of trials it runs


@dataclass(frozen=True)
class Trial:
    performer: Path
    preset: str  # a preset name or .toml path, as `load_preset` takes
    minutes: float
    seed: int
    out: Path  # where the duet goes


def run_trial(trial: Trial, model_path: Path | None = None) -> dict:
    """One simulated duet, its report and its music figures (a process of its own when parallel)."""
    from engine.offline.simulate import simulate  # torch: only in the processes that simulate

    preset = load_preset(trial.preset)
    loaded = _MODELS.get(Path(model_path or resolve_model_path(preset)), resolve_adapters(preset))  # with its styles
    report = simulate(trial.performer, loaded.model, loaded.tokenizer, preset, trial.out, minutes=trial.minutes, seed=trial.seed)
    report["model"] = loaded.label  # what was played: `model_path` may stand in for the preset's
    return {"performer": str(trial.performer), "preset": preset.name, "mode": report["mode"],
            "model": report["model"], "stuck_notes": report["stuck_notes"], "response_ms_p99": report["response_ms_p99"],
            "wall_s": report["wall_s"], "music": report["music"]}


def music_bench(performers: Sequence[Path], presets: Sequence[str], work_dir: Path, *, minutes: float = 2.0,
                seed: int = 0, jobs: int = 1, model_path: Path | None = None,
                on_trial: Callable[[dict], None] | None = None) -> dict:
    """{"columns": {preset name: mean figures, "performer": self figures}, "trials": [...]}.

    Each preset plays `minutes` against each performance (looped if shorter). A figure's
    column value is the mean over the performances where it could be told (None elsewhere).
    The performer's column is his own next 8 s against his last, over the same stretches."""
    work_dir.mkdir(parents=True, exist_ok=True)
    trials = [Trial(Path(p), preset, minutes, seed, work_dir / f"{Path(p).stem}--{Path(preset).stem}.mid")
              for preset in presets for p in performers]
    results: list[dict] = []
    if jobs <= 1:
        for trial in trials:
            results.append(run_trial(trial, model_path))
            if on_trial is not None:
                on_trial(results[-1])
    else:
        # Own processes (spawned: torch and fork do not mix), one torch thread each.
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            for result in pool.map(run_trial, trials, [model_path] * len(trials)):
                results.append(result)
                if on_trial is not None:
                    on_trial(result)
    columns: dict[str, Figures] = {}
    for name in dict.fromkeys(r["preset"] for r in results):
        columns[name] = mean_figures([r["music"] for r in results if r["preset"] == name])
        columns[name]["stuck_notes"] = sum(r["stuck_notes"] for r in results if r["preset"] == name)
    heard = [_first_minutes(read_performance(p), minutes) for p in performers]
    columns[SELF] = self_figures(join_performances(heard))
    return {"minutes": minutes, "performers": [str(p) for p in performers], "columns": columns, "trials": results}


# A ratio counted over units is pooled by its units (a duet with one key window must not
# weigh as much as one with ten); other figures are plain means over the duets.
WEIGHTED_BY = {"key_compat": "key_units", "in_scale": "key_units", "answers": "performer_phrases",
               "motif_reuse": "motif_phrases", "copy_rate": "motif_phrases", "short_answers": "whole_answers",
               "on_pulse": "pulse_attacks"}


def mean_figures(rows: Sequence[Figures]) -> Figures:
    """Each figure's mean over the rows that have it (None where none has); the ratios in
    WEIGHTED_BY are weighted by the units they were counted over."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    out: Figures = {}
    for key in keys:
        pairs = [(row[key], _weight(row, key)) for row in rows if isinstance(row.get(key), (int, float))]
        total = sum(w for _, w in pairs)
        out[key] = round(sum(v * w for v, w in pairs) / total, 4) if total > 0 else None
    return out


def _weight(row: Figures, key: str) -> float:
    units = WEIGHTED_BY.get(key)
    if units is None:
        return 1.0
    value = row.get(units)
    return float(value) if isinstance(value, (int, float)) else 0.0


def format_table(columns: dict[str, Figures], keys: Sequence[str] | None = None) -> str:
    """Plain text: a row per figure (the headline ones first), a column per preset."""
    names = list(columns)
    if keys is None:
        every = list(dict.fromkeys(k for column in columns.values() for k in column))
        keys = [k for k in HEADLINE if k in every] + [k for k in every if k not in HEADLINE]
    body = [[key] + [_cell(columns[name].get(key)) for name in names] for key in keys]
    header = ["figure"] + names
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    return "\n".join("  ".join([line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])])
                     for line in [header] + body)


def default_performers(corpus_dir: Path) -> list[Path]:
    """The corpus's held-out performances (never trained on)."""
    holdout = corpus_dir / "holdout"
    found = sorted(holdout.glob("*.mid"))
    if not found:
        raise FileNotFoundError(f"no held-out performances in {holdout}: build the corpus (scripts/build-corpus)")
    return found


def _first_minutes(notes, minutes: float):
    start_s = min((n.start_s for n in notes), default=0.0)
    return [n for n in notes if n.start_s < start_s + minutes * 60]


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def cpu_jobs() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))
