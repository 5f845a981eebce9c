"""The music bench's columns: ratios pooled by the units they were counted over."""
from __future__ import annotations

import pytest

from engine.offline.music_bench import format_table, mean_figures


def test_ratios_are_pooled_by_their_units_and_the_rest_averaged():
    rows = [{"key_compat": 0.0, "key_units": 1, "hammer": 0.1, "velocity_follow": None},
            {"key_compat": 0.9, "key_units": 9, "hammer": 0.3, "velocity_follow": 0.5}]
    mean = mean_figures(rows)
    assert mean["key_compat"] == pytest.approx(0.81)  # 8.1 compatible units of 10
    assert mean["hammer"] == pytest.approx(0.2) and mean["velocity_follow"] == 0.5
    assert mean_figures([{"answers": 0.5, "performer_phrases": 0}])["answers"] is None


def test_the_table_puts_the_headline_figures_first():
    text = format_table({"a": {"ai_notes": 3, "hammer": 0.25}, "b": {"hammer": None}})
    lines = text.splitlines()
    assert lines[0].split() == ["figure", "a", "b"]
    assert lines[1].split() == ["hammer", "0.250", "-"] and lines[2].split() == ["ai_notes", "3", "-"]
