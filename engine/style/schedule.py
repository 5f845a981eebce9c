"""A style run's learning-rate schedule and its early stop: warm-up, then a cosine over the steps or
the minutes, and the cool-down a validation plateau (or, earlier, overfitting) begins before the
run ends."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from engine.training.loop import LoopConfig, LoopState, lr_at, step_progress

log = logging.getLogger(__name__)

# Overfitting, not a noisy plateau: the best validation loss is twice the patience old and each of
# the last `patience` evaluations lies this far (a share) above it. A small corpus does this at a
# high rate, long before the cosine's second half (half an hour of one pianist: from step 100-200).
OVERFIT_MARGIN = 0.01


@dataclass(frozen=True)
class Schedule:
    """`loop`'s schedule for one run of a style. `budget_s`: the training seconds the cosine spans
    when a time limit is set (this run's and the earlier runs' of the style), else None;
    `steps_count`: False when only the time limit ends the run (its max_steps is a cap, not a plan).
    `trained_s` below is the training time over every run so far, the same on every process."""

    loop: LoopConfig
    budget_s: float | None = None
    steps_count: bool = True
    name: str = "style"  # for the log

    @property
    def cooldown_steps(self) -> int:
        return self.loop.patience * self.loop.eval_every

    def progress(self, state: LoopState, trained_s: float) -> float:
        """How far the learning rate's cosine has gone, 0-1: along the steps or the time, whichever
        is further, or, once a plateau has begun the cool-down, on to the end over `cooldown_steps`."""
        by_steps = step_progress(state.step, self.loop) if self.steps_count else 0.0
        by_time = trained_s / self.budget_s if self.budget_s else 0.0
        by_cooldown = 0.0
        if state.cooldown_step is not None:
            done = (state.step - state.cooldown_step) / self.cooldown_steps
            by_cooldown = state.cooldown_progress + (1 - state.cooldown_progress) * done
        return min(1.0, max(by_steps, by_time, by_cooldown))

    def lr(self, state: LoopState, trained_s: float) -> float:
        return lr_at(state.step, self.loop, self.progress(state, trained_s))

    def early_stop(self, state: LoopState, trained_s: float) -> bool:
        """After an evaluation: does the run end here? A plateau while the rate is still high is that
        rate's noise floor, not the end of learning, so a plateau counts only in the cosine's second
        half, or earlier when the validation loss is climbing away from its best (`overfitting`).
        The first one cools the rate down to its floor over `cooldown_steps` (recorded in `state`, so
        a resumed run goes on with it), and the run ends when that is done."""
        progress = self.progress(state, trained_s)
        overfitting = progress < 0.5 and self.overfitting(state)
        plateau = (state.evals_since_best >= self.loop.patience and progress >= 0.5) or overfitting
        if plateau and state.cooldown_step is None and progress < 1.0:
            state.cooldown_step, state.cooldown_progress = state.step, progress
            state.evals_since_best = 0
            log.info("style %s: %s at step %d (best at %d); cooling the learning rate down over %d steps",
                     self.name, "overfitting" if overfitting else "validation plateau", state.step,
                     state.best_step, self.cooldown_steps)
            return False
        cooled = state.cooldown_step is not None and state.step >= state.cooldown_step + self.cooldown_steps
        return plateau or cooled

    def overfitting(self, state: LoopState) -> bool:
        """The best validation loss is `2 * patience` evaluations old and each of the last `patience`
        lies OVERFIT_MARGIN or more above it: the adapter is learning the training files, not the
        pianist, and the high rate of the cosine's first half will not bring it back."""
        patience = self.loop.patience
        if state.cooldown_step is not None or state.evals_since_best < 2 * patience:
            return False
        recent = [h["val_loss"] for h in (state.history or [])[-patience:]]
        return len(recent) == patience and all(v >= state.best_val_loss * (1 + OVERFIT_MARGIN) for v in recent)
