"""A style run's forgetting check: the base's loss on its own validation windows with the adapter,
against without, at each evaluation. An adapter past the limit never becomes the style, and a run
that stays past it for `patience` evaluations ends (`StyleConfig.max_forgetting`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.training.loop import LoopState, evenly_spaced

log = logging.getLogger(__name__)

STOPPED = "forgetting limit"  # a run's stopped_because when the check ends it


@dataclass(frozen=True)
class ForgettingCheck:
    """`windows`: the base corpus's validation windows scored at each evaluation (None: the check
    is off, or there is no base corpus to check on); `limit`: the largest share the adapter may
    raise the base's loss there by (None: measured, never enforced)."""

    windows: np.ndarray | None
    limit: float | None

    @classmethod
    def of(cls, base_val_rows: np.ndarray | None, limit: float | None, windows: int, *, name: str,
           base_corpus: Path) -> ForgettingCheck:
        """The check of a run: `windows` of the base corpus's validation rows, spread evenly (None:
        no base corpus built in `base_corpus`); off when `limit` is None."""
        if limit is None:
            return cls(None, None)
        if base_val_rows is None or not len(base_val_rows):
            why = "no base corpus built in" if base_val_rows is None else "no validation windows in"
            log.info("style %s: forgetting not checked (%s %s: scripts/build-corpus)", name, why, base_corpus)
            return cls(None, limit)
        return cls(evenly_spaced(base_val_rows, windows), limit)

    @property
    def active(self) -> bool:
        return self.windows is not None

    def begin(self, state: LoopState, base_loss: float) -> dict[str, float]:
        """The base's own loss on the windows, before the first step: what forgetting is measured from."""
        state.base_val_loss, state.best_forgetting = base_loss, 0.0
        return {"base_val_loss": base_loss, "forgetting": 0.0}

    def judge(self, state: LoopState, loss: float | None) -> dict[str, float]:
        """After an evaluation whose loss on the windows is `loss` (None when unchecked): the
        history's fields, and `state.evals_over_budget` counted on (0 when within the limit)."""
        if loss is None or not state.base_val_loss:
            state.evals_over_budget = 0
            return {}
        forgetting = loss / state.base_val_loss - 1
        over = self.limit is not None and forgetting > self.limit
        state.evals_over_budget = state.evals_over_budget + 1 if over else 0
        return {"forgetting": round(forgetting, 5)}

    def ends(self, state: LoopState, patience: int, name: str) -> bool:
        """Has the run stayed past the limit for `patience` evaluations? (logged when it has)"""
        if state.evals_over_budget < patience or self.limit is None:
            return False
        log.info("style %s: forgetting over the %.1f%% allowed for %d evaluations; the best adapter within it "
                 "(step %d) is the style", name, 100 * self.limit, state.evals_over_budget, state.best_step)
        return True

    def card(self, state: LoopState) -> dict[str, Any]:
        checked = state.base_val_loss is not None
        return {"max": self.limit, "checked": checked, "windows": len(self.windows) if checked and self.active else 0,
                "base_val_loss": state.base_val_loss, "best": state.best_forgetting}
