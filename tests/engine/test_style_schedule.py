"""A style run's schedule: the cosine over the steps or the minutes, and the cool-down that a
validation plateau in its second half begins before the run ends."""
from __future__ import annotations

import pytest

from engine.style.schedule import Schedule
from engine.training.loop import LoopConfig, LoopState

LOOP = LoopConfig(max_steps=1000, lr=6e-4, min_lr=6e-5, warmup_steps=0, eval_every=50, patience=4)
LONG_LOOP = LoopConfig(max_steps=2000, lr=6e-4, min_lr=6e-5, warmup_steps=0, eval_every=50, patience=4)


def test_the_cosine_goes_along_the_steps_or_the_time_whichever_is_further():
    by_steps = Schedule(LOOP)
    assert by_steps.progress(LoopState(step=250), trained_s=0.0) == pytest.approx(0.25)
    timed = Schedule(LOOP, budget_s=1200.0)
    assert timed.progress(LoopState(step=250), trained_s=600.0) == pytest.approx(0.5)
    only_time = Schedule(LOOP, budget_s=1200.0, steps_count=False)
    assert only_time.progress(LoopState(step=900), trained_s=300.0) == pytest.approx(0.25)
    assert by_steps.lr(LoopState(step=0), 0.0) == pytest.approx(LOOP.lr)
    assert by_steps.lr(LoopState(step=1000), 0.0) == pytest.approx(LOOP.min_lr)


def test_a_plateau_in_the_first_half_goes_on_at_the_rate_of_the_cosine():
    state = LoopState(step=300, evals_since_best=6)
    assert not Schedule(LOOP).early_stop(state, 0.0)
    assert state.cooldown_step is None


def test_a_plateau_in_the_second_half_cools_the_rate_down_then_ends_the_run():
    schedule, state = Schedule(LOOP), LoopState(step=600, evals_since_best=4)
    assert not schedule.early_stop(state, 0.0)  # the plateau begins the cool-down
    assert (state.cooldown_step, state.cooldown_progress, state.evals_since_best) == (600, pytest.approx(0.6), 0)
    assert schedule.cooldown_steps == 200
    rates = []
    for step in range(601, 801):
        state.step = step
        rates.append(schedule.lr(state, 0.0))
    assert all(b < a for a, b in zip(rates, rates[1:]))
    assert rates[-1] == pytest.approx(LOOP.min_lr)  # at its floor 200 steps on, not at step 1000
    state.step = 750
    assert not schedule.early_stop(state, 0.0)
    state.step = 800
    assert schedule.early_stop(state, 0.0)  # cooled down: the run ends


def test_a_plateau_once_the_cosine_is_done_ends_the_run_at_once():
    state = LoopState(step=1000, evals_since_best=4)
    assert Schedule(LOOP).early_stop(state, 0.0) and state.cooldown_step is None


def history(*val_losses: float, every: int = 50) -> list[dict]:
    return [{"step": every * (i + 1), "train_loss": 1.0, "val_loss": v} for i, v in enumerate(val_losses)]


def test_overfitting_in_the_first_half_cools_the_rate_down_then_ends_the_run():
    """Half an hour of one pianist: the best at step 100, the validation loss climbing after it."""
    schedule = Schedule(LONG_LOOP)
    climbing = (2.10, 2.00, 2.01, 2.02, 2.025, 2.03, 2.04, 2.05, 2.06, 2.07)
    state = LoopState(step=450, best_val_loss=2.00, best_step=100, evals_since_best=7, history=history(*climbing[:9]))
    assert not schedule.early_stop(state, 0.0) and state.cooldown_step is None  # 7 evaluations old: not yet
    state.step, state.evals_since_best, state.history = 500, 8, history(*climbing)
    assert not schedule.early_stop(state, 0.0)  # a quarter of the way: overfitting begins the cool-down
    assert (state.cooldown_step, state.cooldown_progress, state.evals_since_best) == (500, pytest.approx(0.25), 0)
    state.step = 650
    assert not schedule.early_stop(state, 0.0)
    state.step = 700
    assert schedule.early_stop(state, 0.0)  # cooled down: the run ends at 700, not 2000


def test_a_long_flat_plateau_at_a_high_rate_is_not_overfitting():
    """Eight evaluations without a new best, but hovering within 1% of it: noise at a high rate."""
    flat = (2.10, 2.00, 2.015, 2.005, 2.01, 2.012, 2.008, 2.011, 2.006, 2.009)
    state = LoopState(step=500, best_val_loss=2.00, best_step=100, evals_since_best=8, history=history(*flat))
    schedule = Schedule(LONG_LOOP, budget_s=1200.0)
    assert not schedule.early_stop(state, trained_s=300.0) and state.cooldown_step is None
    rising_once_only = (*flat[:-1], 2.05)  # one bad evaluation is not a climb
    state.history = history(*rising_once_only)
    assert not schedule.early_stop(state, trained_s=300.0) and state.cooldown_step is None
