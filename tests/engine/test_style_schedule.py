"""A style run's schedule: the cosine over the steps or the minutes, and the cool-down that a
validation plateau in its second half begins before the run ends."""
from __future__ import annotations

import pytest

from engine.style.schedule import Schedule
from engine.training.loop import LoopConfig, LoopState

LOOP = LoopConfig(max_steps=1000, lr=6e-4, min_lr=6e-5, warmup_steps=0, eval_every=50, patience=4)


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
