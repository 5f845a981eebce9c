"""The keep-take key: the last recording goes into the corpus of the style the preset plays
(`mine` when it plays none), and the log says what happened."""
from __future__ import annotations

import mido

from engine.clock import FakeClock
from engine.presets.schema import AdapterRef, ModelRef, Preset
from engine.style.corpus import list_corpora, open_corpus
from tests.ui.rig import PHRASE, Rig, async_test, log_text, make_app, start, wait_for


def play_on_the_fake_clock(app, rig) -> None:
    jam = app.bridge.jam
    t_s = 0.5
    for pitch in PHRASE:
        jam.advance(t_s)
        rig.play((0x90, pitch, 90))
        jam.advance(t_s + 0.09)
        rig.play((0x80, pitch, 0))
        t_s += 0.1
    jam.advance(t_s + 2.0)


@async_test
async def test_k_keeps_the_last_take_in_the_corpus_mine(tmp_path, monkeypatch, jam_model):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model, clock_factory=FakeClock)
    async with app.run_test() as pilot:
        await pilot.press("k")  # nothing recorded yet: nothing kept, and said so
        await wait_for(pilot, lambda: "not kept in corpus mine: no take recorded yet" in log_text(app))
        await pilot.press("r")
        await start(app, pilot)
        await wait_for(pilot, lambda: app.screen.recording_now)
        play_on_the_fake_clock(app, rig)
        await pilot.press("r")
        await wait_for(pilot, lambda: app.bridge.saved)
        [take] = app.bridge.saved
        await pilot.press("k")
        await wait_for(pilot, lambda: f"kept {take.name} in corpus mine" in log_text(app))
        await pilot.press("k")  # the same take twice: the corpus keeps one
        await wait_for(pilot, lambda: f"{take.name} not kept in corpus mine: duplicate" in log_text(app))
    corpus = open_corpus("mine")
    assert [entry["source"] for entry in corpus.entries] == [str(take)]


@async_test
async def test_the_take_goes_to_the_corpus_of_the_style_in_use_by_a_remapped_key(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    take = recordings / "jam-earlier.mid"  # saved by an earlier console: still the last take
    song = mido.MidiFile()
    track = mido.MidiTrack()
    for pitch in PHRASE:
        track += [mido.Message("note_on", note=pitch, velocity=80, time=0),
                  mido.Message("note_off", note=pitch, velocity=0, time=240)]
    song.tracks.append(track)
    song.save(take)
    preset = Preset(model=ModelRef(adapters=(AdapterRef("blues", 0.5),)), hotkeys={"keep_take": "x"})
    app = make_app(Rig(), tmp_path, preset=preset)
    async with app.run_test() as pilot:
        await pilot.press("k")  # no longer the key
        await pilot.press("x")
        await wait_for(pilot, lambda: "kept jam-earlier.mid in corpus blues" in log_text(app))
        await pilot.pause(0.2)
        assert "duplicate" not in log_text(app)  # `k` added nothing before `x` did
    assert list_corpora() == ["blues"]
