"""The meters' short history (sparklines of latency, real-time factor and lead) and their warning
when the machine falls behind (real-time factor near 1, notes late or dropped)."""
from __future__ import annotations

import math

from jamtui.widgets.meters import BEHIND_WINDOW_S, Meters
from jamtui.widgets.sparkline import BLOCKS, History, sparkline
from tests.ui.test_parts import metrics


def test_a_sparkline_scales_its_readings_and_leaves_gaps_for_no_figure():
    assert sparkline([0.0, 5.0, 10.0], 3) == BLOCKS[0] + BLOCKS[4] + BLOCKS[-1]
    assert sparkline([math.nan, 2.0, math.inf], 5, low=0.0, high=4.0) == "   " + BLOCKS[4] + " "
    history = History(size=4)
    for value in range(10):
        history.add(float(value))
    assert list(history.values) == [6.0, 7.0, 8.0, 9.0]
    assert history.sparkline(2) == BLOCKS[0] + BLOCKS[-1]  # the latest two, on their own scale
    assert sparkline([], 3) == "   "


def test_the_meters_keep_a_history_and_warn_when_the_machine_falls_behind():
    meters = Meters()
    meters.started()
    for i, (rtf, late) in enumerate([(8.0, 0), (6.0, 0), (4.0, 0)]):
        meters.show(metrics(responses=1, response_latency_ms_p50=100.0 + 10 * i, rtf=rtf, lead_s=0.5, late_notes=late),
                    None, now_s=float(i))
    assert list(meters.rtf.values) == [8.0, 6.0, 4.0] and list(meters.latency.values) == [100.0, 110.0, 120.0]
    assert meters.behind == "" and meters.border_title == "meters"
    assert "lat " in meters.render().plain and "rtf " in meters.render().plain
    meters.show(metrics(responses=1, rtf=1.2, late_notes=3), None, now_s=3.0)
    assert meters.behind == "rtf 1.2, 3 late" and "⚠ behind" in meters.border_title
    meters.show(metrics(responses=1, rtf=5.0, late_notes=3), None, now_s=3.0 + BEHIND_WINDOW_S + 0.1)
    assert meters.behind == ""  # no new late note for a while, and fast again
    meters.show(metrics(responses=1, rtf=5.0), None, now_s=3.0 + BEHIND_WINDOW_S + 0.2)
    assert len(meters.rtf.values) == 5  # at most one reading every HISTORY_EVERY_S
    meters.started()  # a new jam: no history, no warning
    assert list(meters.rtf.values) == [] and meters.border_title == "meters"
