"""The console's parts on their own: activity meters, the preset cycle, hotkey remapping, event words."""
from __future__ import annotations

from dataclasses import replace

from textual.binding import Binding

from engine.presets.files import load_preset
from engine.duet.session import SessionEvent, SessionMetrics
from jamtui.hotkeys import resolve_keymap
from jamtui.preset_steps import PresetSteps
from jamtui.widgets.eventlog import describe
from jamtui.widgets.meters import Meters

ZERO = SessionMetrics(mode="continuous", response_latency_ms_p50=0.0, response_latency_ms_p99=0.0, responses=0,
                      rtf=float("inf"), lead_s=0.0, input_queue_depth=0, output_pending=0, generation_queue_depth=0,
                      dropped_onsets=0, notes_in=0, notes_out=0, chunks=0, generation_errors=0, echo_rate=0.0,
                      lateness_ms_p99=0.0)


def metrics(**kw) -> SessionMetrics:
    return replace(ZERO, **kw)


def test_meters_light_whoever_just_played_and_count_notes_per_second():
    meters = Meters()
    meters.started()
    meters.show(metrics(), None, now_s=10.0)
    meters.show(metrics(notes_in=4), None, now_s=11.0)
    assert meters.active("in") and not meters.active("out")
    assert meters.rate("in") == 4.0
    meters.show(metrics(notes_in=4, notes_out=6), None, now_s=12.0)
    assert not meters.active("in") and meters.active("out")
    assert meters.rate("out") == 3.0  # 6 notes over the last 2 s
    meters.show(metrics(), None, now_s=13.0)  # a new session counts from zero
    assert meters.rate("in") == 0.0


def test_meters_text_says_what_matters():
    meters = Meters()
    meters.show(metrics(notes_in=8, notes_out=21, responses=2, response_latency_ms_p50=120.4,
                        response_latency_ms_p99=180.0, rtf=9.8, dropped_onsets=1, generation_errors=3), None)
    text = meters.render().plain
    for words in ("notes in  8", "notes out 21", "responses 2  p50 120 ms  p99 180 ms", "rtf 9.8", "dropped 1",
                  "generation errors 3", "echo 0%"):
        assert words in text
    assert "responses –" in Meters().render().plain  # nothing has run yet


def test_the_preset_cycle_steps_both_ways_and_skips_broken_files(tmp_path):
    (tmp_path / "broken.toml").write_text("mode = 'jazz-hands'\n")
    book = PresetSteps(load_preset("default", user_dir=tmp_path), user_dir=tmp_path)
    book.refresh()
    preset, problems = book.step(-1)
    assert preset.name == "continuous" and problems == []
    assert book.step(1)[0].name == "default"
    assert book.step(1)[0].name == "imitate"
    assert book.step(1)[0].name == "accompany"  # past the end: round to the start
    preset, problems = book.step(1)  # broken.toml comes next, and is skipped
    assert preset.name == "call-and-response"
    assert len(problems) == 1 and "broken.toml" in problems[0] and "mode" in problems[0]


BINDINGS = [Binding("p", "panic", id="panic"), Binding("m", "next_mode", id="mode"),
            Binding("q", "quit", id="quit"), Binding("left_square_bracket", "step_preset(-1)", id="prev_preset")]


def test_a_preset_remaps_keys_and_what_cannot_be_remapped_is_said():
    keymap, problems = resolve_keymap(BINDINGS, {"panic": "escape", "prev_preset": ".", "nope": "x", "mode": "q"})
    assert keymap == {"panic": "escape", "prev_preset": "full_stop"}
    assert problems[0].startswith("hotkeys.nope: no such action")
    assert problems[1] == "hotkeys.mode: 'q' is already the key of quit; mode stays on 'm'"
    # Two actions may trade keys.
    assert resolve_keymap(BINDINGS, {"panic": "m", "mode": "p"}) == ({"panic": "m", "mode": "p"}, [])


def test_session_events_read_as_words():
    assert describe(SessionEvent("ai_phrase_started", 1.0, {"until_s": 4.25}))[0] == "AI answers until 4.2 s"
    assert describe(SessionEvent("mode_changed", 2.0, {"mode": "accompany", "previous": "continuous"}))[0] \
        == "mode continuous → accompany"
    assert describe(SessionEvent("panicked", 3.0))[0] == "PANIC: all notes off"
    assert describe(SessionEvent("something_new", 4.0, {"x": 1}))[0] == "something_new x=1"
