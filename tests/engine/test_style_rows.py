"""A style run's rows: each step's batch (the pianist's windows, and the base's replayed against
forgetting) and the validation subset that early stopping reads."""
from __future__ import annotations

import numpy as np

from engine.style.replay import Batches
from engine.training.loop import evenly_spaced


def test_each_batch_replays_its_share_and_depends_on_the_step_only():
    style = np.full((10, 9), 5, dtype=np.uint16)
    replay = np.full((6, 9), 7, dtype=np.uint16)
    batches = Batches(style, replay, batch_size=8, replay_share=0.25, seed=0)
    for step in range(20):
        batch = batches.at(step)
        assert batch.shape == (8, 9)
        assert (batch[:, 0] == 7).sum() == 2 and (batch[:, 0] == 5).sum() == 6
    assert (Batches(style, replay, 8, 0.5, 0).at(3)[:, 0] == 7).sum() == 4
    assert (Batches(style, None, 8, 0.5, 0).at(3)[:, 0] == 7).sum() == 0  # nothing to replay
    assert (batches.at(4) == batches.at(4)).all()


def test_the_validation_subset_reaches_every_file():
    # Three validation files of 50, 30 and 20 windows, in that order; 10 rows are kept.
    rows = np.concatenate([np.full((50, 4), 1), np.full((30, 4), 2), np.full((20, 4), 3)]).astype(np.uint16)
    rows[:, 1] = np.arange(100)
    kept = evenly_spaced(rows, 10)
    assert len(kept) == 10 and kept[0, 1] == 0 and kept[-1, 1] == 99  # from the first window to the last
    assert np.all(np.diff(kept[:, 1].astype(int)) > 0)  # in order, none twice
    assert [int((kept[:, 0] == f).sum()) for f in (1, 2, 3)] == [5, 3, 2]  # each file its share
    assert (evenly_spaced(rows[:7], 10) == rows[:7]).all()  # fewer than asked: all of them
