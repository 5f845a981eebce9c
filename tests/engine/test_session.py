"""The session on a FakeClock: call-and-response turns and yielding, accompany's band,
continuous play, mode changes, a failing model, and silence at the end."""
from __future__ import annotations

from engine.clock import FakeClock, s_to_ns
from engine.events import ALL_NOTES_OFF_CC, Kind
from engine.midi.memory import MemoryInputPort, MemoryOutputPort
from engine.presets.schema import Limits, Preset
from engine.duet.session import Session
from tests.engine.sessions import advance, make, note_ons, phrase
from tests.midi_checks import assert_balanced

AI_CHANNEL = 0


def test_call_and_response_answers_then_yields(tokenizer, playful):
    clock, inp, out, session, seen = make(tokenizer, playful, "call-and-response", phrase_gap_s=0.5)
    phrase(inp, clock, session, 0.0, [60, 62, 64, 65, 67, 65, 64, 62])
    assert not note_ons(out.events)  # the performer is still playing
    prepare_ms = session.metrics().prepare_ms  # how long before the cue the answer will be asked for
    advance(session, clock, 2.6)
    started = [e for e in seen if e.kind == "ai_phrase_started"]
    assert len(started) == 1
    cue_s = started[0].t_s
    assert 1.975 + 0.5 - 1e-9 <= cue_s < 1.975 + 0.5 + 0.02  # the last key went up at 1.975 s
    advance(session, clock, cue_s + 1.2)
    answer = note_ons(out.events)
    assert answer, "the AI answered nothing"
    assert all(e.t_ns >= session.start_ns + s_to_ns(cue_s) for e in answer)
    # the performer comes back mid-answer: no AI onset after that, what sounds is ended
    t_back_ns = clock.now_ns()
    inp.feed(bytes((0x90, 72, 90)), t_back_ns)
    advance(session, clock, cue_s + 1.25)
    assert [e.kind for e in seen][-1] == "ai_yielded"
    inp.feed(bytes((0x80, 72, 0)), clock.now_ns())
    advance(session, clock, cue_s + 1.3)  # shorter than the gap: no new answer yet
    assert not [e for e in note_ons(out.events) if e.t_ns > t_back_ns]
    metrics = session.metrics()
    # The answer's first chunk was asked for prepare_ms before its cue (at the first 10 ms step
    # after that) and is ready after its real compute; its first note is placed on the cue. So
    # it is late only by what that compute took beyond the lead: on time (0 ms) unless slower.
    assert metrics.responses == 1 and metrics.entry_compute_ms_p50 > 0
    late_ms = metrics.entry_compute_ms_p50 - prepare_ms
    assert max(0.0, late_ms) <= metrics.response_latency_ms_p50 <= max(0.0, late_ms + 10.0)
    assert answer[0].t_ns == session.start_ns + s_to_ns(cue_s)
    assert metrics.notes_in == 9 and metrics.notes_out == len(answer)
    session.stop()
    assert_balanced(out.events)


def test_accompany_stays_in_the_register_band(tokenizer, playful):
    limits = Limits(low_pitch=48, high_pitch=72, max_velocity=90)
    clock, inp, out, session, seen = make(tokenizer, playful, "accompany", limits=limits, lookahead_s=0.5)
    phrase(inp, clock, session, 0.0, [76, 79, 81, 84] * 3)
    advance(session, clock, 4.0)
    ons = note_ons(out.events)
    assert ons
    assert all(48 <= e.number <= 72 for e in ons)
    assert all(e.value <= 90 for e in ons)
    session.stop()
    assert_balanced(out.events)


def test_continuous_plays_throughout_and_stop_ends_in_silence(tokenizer, playful):
    clock, inp, out, session, seen = make(tokenizer, playful, "continuous", lookahead_s=0.5)
    advance(session, clock, 6.0)
    ons = note_ons(out.events)
    seconds = {int((e.t_ns - session.start_ns) / 1e9) for e in ons}
    assert len(seconds) >= 4, f"AI onsets only in seconds {sorted(seconds)}"
    metrics = session.metrics()
    assert metrics.chunks >= 5 and metrics.rtf > 0 and metrics.responses == 1
    session.stop()
    assert not session.scheduler.sounding()
    tail = out.events[-40:]
    assert {e.channel for e in tail if e.kind is Kind.CONTROL and e.number == ALL_NOTES_OFF_CC} == set(range(16))
    assert_balanced(out.events)


def test_set_mode_mid_session(tokenizer, playful):
    clock, inp, out, session, seen = make(tokenizer, playful, "continuous", lookahead_s=0.5)
    advance(session, clock, 2.0)
    assert note_ons(out.events)
    session.set_mode("call-and-response")
    advance(session, clock, 2.01)
    assert session.mode == "call-and-response"
    assert [e for e in seen if e.kind == "mode_changed"][0].detail["mode"] == "call-and-response"
    after = len(out.events)
    advance(session, clock, 5.0)  # nobody plays a call: the AI stays quiet
    assert not note_ons(out.events[after:])
    session.stop()
    assert_balanced(out.events)


class FailingModel:
    """The test model, failing every third chunk in the middle of its decode."""

    def __init__(self, model):
        self._model = model
        self.chunks = self.steps = 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def extend(self, token_ids, cache):
        self.chunks, self.steps = self.chunks + 1, 0
        return self._model.extend(token_ids, cache)

    def decode_one(self, token, cache):
        self.steps += 1
        if self.chunks % 3 == 2 and self.steps == 5:
            raise RuntimeError("model blew up")
        return self._model.decode_one(token, cache)


def test_a_failing_model_keeps_the_session_going_without_hung_notes(tokenizer, playful):
    clock, inp, out, session, seen = make(tokenizer, FailingModel(playful), "continuous", lookahead_s=0.5)
    advance(session, clock, 5.0)
    metrics = session.metrics()
    assert metrics.generation_errors >= 1
    assert "generation_failed" in [e.kind for e in seen]
    assert metrics.chunks > metrics.generation_errors and metrics.notes_out > 0  # other chunks still played
    session.stop()
    assert not session.scheduler.sounding()
    assert_balanced(out.events)


def test_panic_silences_and_the_session_goes_on(tokenizer, playful):
    clock, inp, out, session, seen = make(tokenizer, playful, "continuous", lookahead_s=0.5)
    advance(session, clock, 2.0)
    session.panic()
    assert not session.scheduler.sounding()
    advance(session, clock, 4.0)
    assert "panicked" in [e.kind for e in seen]
    assert note_ons([e for e in out.events if e.t_ns > session.start_ns + s_to_ns(2.1)])
    session.stop()
    assert_balanced(out.events)


def test_shipped_model_answers_a_phrase(tokenizer):
    from engine.model.config import DEFAULT_MODEL_DIR
    from engine.model.checkpoint import load_checkpoint

    model = load_checkpoint(DEFAULT_MODEL_DIR).model
    clock, inp, out, session, seen = make(tokenizer, model, "call-and-response", phrase_gap_s=0.5)
    phrase(inp, clock, session, 0.0, [60, 64, 67, 72, 67, 64, 60, 64])
    advance(session, clock, 5.0)
    assert note_ons(out.events)
    # Real compute counts: the first chunk is generated before the cue; generous bounds for a busy CPU.
    metrics = session.metrics()
    assert metrics.responses == 1 and metrics.entry_compute_ms_p50 > 0
    assert 0 <= metrics.response_latency_ms_p50 < 5000
    session.stop()
    assert_balanced(out.events)


def test_set_preset_waits_for_the_answer_to_end(tokenizer, playful):
    clock, inp, out, session, seen = make(tokenizer, playful, "call-and-response", phrase_gap_s=0.5)
    phrase(inp, clock, session, 0.0, [60, 62, 64, 65])
    advance(session, clock, 1.6)
    assert [e.kind for e in seen] == ["ai_phrase_started"]
    session.set_preset(Preset(name="other", mode="accompany", lookahead_s=0.5))
    advance(session, clock, 2.0)
    assert session.preset.name == "default"  # the answer is still being played
    advance(session, clock, 5.0)
    kinds = [e.kind for e in seen]
    assert kinds[:4] == ["ai_phrase_started", "ai_phrase_ended", "preset_changed", "mode_changed"]
    assert session.preset.name == "other" and session.mode == "accompany"
    session.stop()
    assert_balanced(out.events)


def test_recorder_gets_both_players(tokenizer, playful, tmp_path):
    import mido

    from engine.midi.recorder import SessionRecorder

    clock = FakeClock(start_ns=s_to_ns(100.0))
    inp, out = MemoryInputPort(), MemoryOutputPort(clock)
    recorder = SessionRecorder(tmp_path, clock, name="jam")
    recorder.start()
    session = Session(inp, out, playful, tokenizer, Preset(mode="call-and-response", phrase_gap_s=0.5),
                      clock=clock, recorder=recorder)
    session.start(live=False)
    phrase(inp, clock, session, 0.0, [60, 62, 64, 65])
    advance(session, clock, 4.0)
    session.stop()
    paths = recorder.close()
    tracks = mido.MidiFile(paths.midi_path).tracks
    ons = [sum(1 for m in t if m.type == "note_on" and m.velocity > 0) for t in tracks]
    assert 4 in ons and sum(ons) == 4 + len(note_ons(out.events))


def test_generate_chunk_is_the_model_step(tokenizer, playful):
    clock, inp, out, session, seen = make(tokenizer, playful, "continuous", limits=Limits(low_pitch=48, high_pitch=72))
    notes = session.generate_chunk(0.0)
    assert notes and all(0.0 <= n.start_s < session.chunk_s and 48 <= n.pitch <= 72 for n in notes)
    assert not out.events  # nothing scheduled
    session.stop()


def test_same_seed_same_music_and_the_port_offset_shifts_it(tokenizer, playful):
    def run(**preset_kw):
        clock, inp, out, session, seen = make(tokenizer, playful, "call-and-response", phrase_gap_s=0.5,
                                              **preset_kw)
        phrase(inp, clock, session, 0.0, [60, 62, 64, 65])
        advance(session, clock, 3.0)
        session.stop()
        return [(e.t_ns, e.number, e.value) for e in note_ons(out.events)]

    first, again = run(), run()
    assert first and first == again
    later = run(output_offset_ms={"memory out": 20.0})
    # Sent at the first 10 ms simulation step at or after each (offset) deadline.
    assert [(p, v) for _, p, v in later] == [(p, v) for _, p, v in first]
    assert all(10_000_000 <= t2 - t1 <= 30_000_000 for (t1, _, _), (t2, _, _) in zip(first, later))


def test_live_threads_play_and_stop_in_silence(tokenizer, playful):
    """The same logic on threads with the real clock: the one test that waits for music
    (polling, at most a few seconds), since only a real clock moves the live loop."""
    import time

    from engine.clock import MonotonicClock

    clock = MonotonicClock()
    inp, out = MemoryInputPort(), MemoryOutputPort(clock)
    session = Session(inp, out, playful, tokenizer, Preset(mode="continuous", lookahead_s=0.3), clock=clock)
    session.start()
    deadline = time.monotonic() + 10.0
    while session.metrics().notes_out == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    session.stop()
    assert session.metrics().notes_out > 0
    assert not session.scheduler.running and not session.scheduler.sounding()
    assert_balanced(out.take())


def test_run_simulated_with_a_file_player(tokenizer, playful):
    from engine.midi.midifile import TimedMessage
    from engine.midi.file_input import FilePlayerPort

    clock = FakeClock(start_ns=s_to_ns(100.0))
    line = [TimedMessage(i * 0.3 + dt, bytes((status, 60 + i, vel))) for i in range(6)
            for dt, status, vel in ((0.0, 0x90, 80), (0.25, 0x80, 0))]
    player = FilePlayerPort(line, clock)
    out = MemoryOutputPort(clock)
    session = Session(player, out, playful, tokenizer, Preset(mode="call-and-response", phrase_gap_s=0.5),
                      clock=clock, seed=2)
    session.run_simulated(5.0, pump=player.pump)
    session.stop()
    metrics = session.metrics()
    assert metrics.notes_in == 6 and metrics.responses == 1 and metrics.notes_out > 0
    assert_balanced(out.events)


def test_accompany_rewrites_what_it_wrote_ahead_when_the_performer_plays(tokenizer, playful):
    """Notes beyond the commit window are cancelled and written again once the performer's
    new note may be heard; what was about to sound stays; nothing hangs."""
    clock, inp, out, session, seen = make(tokenizer, playful, "accompany", lookahead_s=2.0, commit_window_s=0.2)
    advance(session, clock, 1.5)  # the AI is playing and has written ~2 s ahead
    assert session.metrics().lead_s > 0.2, "nothing written beyond the commit window to revise"
    assert session.scheduler.stats().cancelled == 0
    phrase(inp, clock, session, 1.5, [60, 64, 67])
    advance(session, clock, 3.0)
    metrics = session.metrics()
    assert metrics.revisions >= 1
    assert session.scheduler.stats().cancelled > 0
    session.stop()
    assert_balanced(out.events)


def test_recording_can_begin_mid_jam_and_metrics_name_the_preset(tokenizer, playful, tmp_path):
    import mido

    from engine.midi.recorder import SessionRecorder

    clock, inp, out, session, seen = make(tokenizer, playful, "continuous")
    advance(session, clock, 1.0)
    assert session.metrics().preset == "default"
    recorder = SessionRecorder(tmp_path, clock, name="mid")
    recorder.start()
    session.set_recorder(recorder)
    phrase(inp, clock, session, 1.0, [60, 62])
    advance(session, clock, 2.5)
    session.set_recorder(None)
    advance(session, clock, 3.0)
    paths = recorder.close()
    performer, ai = [[m for m in track if m.type == "note_on" and m.velocity > 0]
                     for track in mido.MidiFile(paths.midi_path).tracks[-2:]]
    assert len(performer) == 2 and ai
    session.stop()


def test_a_hand_over_key_answers_with_a_note_prepared_in_the_silence(tokenizer, playful):
    from engine.presets.schema import Handover

    clock, inp, out, session, seen = make(tokenizer, playful, "call-and-response", phrase_gap_s=8.0,
                                          handover=Handover(kind="note", number=21))
    phrase(inp, clock, session, 0.0, [60, 62, 64, 65])
    advance(session, clock, 1.2)
    assert session.entry_prepared, "nothing prepared during the silence"
    key_ns = clock.now_ns()
    inp.feed(bytes((0x90, 21, 64)), key_ns)
    advance(session, clock, 1.25)
    ons = note_ons(out.events)
    assert ons and ons[0].t_ns - key_ns <= s_to_ns(0.011)  # sent at the next 10 ms step
    metrics = session.metrics()
    assert metrics.responses == 1 and metrics.response_latency_ms_p99 <= 10.0  # no compute after the key
    session.stop()
    assert_balanced(out.events)
