"""Switching style mid-jam: the preset's other adapters load in the background while the AI plays
on, and the generation thread takes the new model between two chunks (its context prefilled),
so the AI's part goes on without a gap and is written by the new model from then on."""
from __future__ import annotations

import queue
import threading
from itertools import pairwise

import pytest

from engine.clock import FakeClock
from engine.duet.jam import Jam
from engine.duet.worker import ChunkGenerator, ChunkRequest, ChunkResult, GenerationWorker, ModelSwapped, SwapRequest, SyncRequest
from engine.events import AI, Note
from engine.model.cache import ModelCache
from engine.model.sampling import Sampling
from engine.presets.schema import AdapterRef, ModelRef, Preset
from engine.tokens.tokenizer import JamTokenizer
from tests.engine.test_jam_lifecycle import Ports

pytestmark = pytest.mark.usefixtures("one_thread")
TOKENIZER = JamTokenizer()
LOW, HIGH = range(48, 60), range(84, 96)  # where the base plays, and where the style does


class Tagged:
    """A model that counts the passes run through it, and on which threads (wraps Playful);
    with `pitches`, it leans to play in that range, so its notes can be told apart."""

    def __init__(self, model, pitches: range | None = None) -> None:
        self._model = model
        self.calls = 0
        self.threads: set[str] = set()
        self.bias = 0.0
        if pitches is not None:
            import torch

            self.bias = torch.zeros(len(model.bias))
            for pitch in pitches:
                self.bias[TOKENIZER.token_id(f"Pitch_{pitch}")] = 6.0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def _seen(self) -> None:
        self.calls += 1
        self.threads.add(threading.current_thread().name)

    def prefill(self, token_ids, cache):
        self._seen()
        return self._model.prefill(token_ids, cache)

    def extend(self, token_ids, cache):
        self._seen()
        return self._model.extend(token_ids, cache) + self.bias

    def decode_one(self, token, cache):
        self._seen()
        return self._model.decode_one(token, cache) + self.bias


@pytest.fixture
def style_dir(tmp_path, monkeypatch):
    """A style named "mine" in a private user data dir (the loader below never reads it)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from engine.user_dirs import styles_dir

    path = styles_dir() / "mine"
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text("{}")
    return path


def onsets_s(ports: Ports, start_ns: int, pitches: range = range(128)) -> list[float]:
    return [(e.t_ns - start_ns) / 1e9 for e in ports.sink.events if e.is_note_on and e.number in pitches]


def test_a_style_switch_loads_in_the_background_and_swaps_between_chunks(playful, tokenizer, style_dir):
    base, styled = Tagged(playful, LOW), Tagged(playful, HIGH)
    gate = threading.Event()
    loads = []

    def loader(path, adapters=()):
        loads.append(adapters)
        if not adapters:
            return base, tokenizer
        assert gate.wait(10), "the test never let the style load"
        return styled, tokenizer

    ports = Ports()
    jam = Jam(Preset(name="plain", mode="continuous"), clock=FakeClock(), port_opener=ports,
              models=ModelCache(loader))
    start_ns = jam.clock.now_ns()
    jam.start()
    jam.advance(3.0)
    assert base.calls > 0 and onsets_s(ports, start_ns)

    with_style = Preset(name="styled", mode="continuous", model=ModelRef(adapters=(AdapterRef("mine", 0.8),)))
    assert jam.set_preset(with_style) is True
    jam.advance(5.0)  # the style is still loading: the AI plays on with the base
    assert not jam.wait_for_model(0.0)
    assert styled.calls == 0 and jam.model.adapters == ()
    assert any(3.0 < t < 5.0 for t in onsets_s(ports, start_ns))

    gate.set()
    assert jam.wait_for_model(10.0)
    assert jam.model.model is styled and jam.model.adapters == ((style_dir, 0.8),)
    assert loads == [(), ((style_dir, 0.8),)]
    base_calls = base.calls
    jam.advance(9.0)

    changed = [e for e in jam.events() if e.kind == "model_changed"]
    assert len(changed) == 1 and changed[0].detail["model"] == f"{base_label()} + mine:0.8"
    swap_s = changed[0].t_s
    assert 5.0 <= swap_s < 5.05  # at the first tick after it was ready
    assert base.calls == base_calls  # nothing of the old model ran after the swap
    assert styled.calls > 0
    onsets = onsets_s(ports, start_ns)
    low, high = onsets_s(ports, start_ns, LOW), onsets_s(ports, start_ns, HIGH)
    assert high, "the new model played nothing"
    # A clean seam: what the base wrote ahead before the swap still sounds (nothing cancelled),
    # then the style's notes follow, none before the swap and none among the base's.
    assert any(t > swap_s for t in low), "the base's written-ahead notes were dropped"
    assert max(low) < min(high) and swap_s < min(high) < swap_s + 2.0
    # No gap: the hand-over is no longer than the AI's usual pauses before it.
    gaps_before = [b - a for a, b in pairwise(onsets) if 1.0 <= a and b <= swap_s]
    assert min(high) - max(low) <= max(gaps_before), (gaps_before, max(low), min(high))
    assert jam.preset.name == "styled"
    summary = jam.stop()
    assert summary.error is None and summary.metrics.generation_errors == 0


def base_label() -> str:
    from engine.model.config import DEFAULT_MODEL_DIR

    return DEFAULT_MODEL_DIR.name


def test_switching_back_uses_the_cache_and_a_failed_load_keeps_the_model(playful, tokenizer, style_dir, caplog):
    base, styled = Tagged(playful), Tagged(playful)
    loads = []
    broken = {"on": False}

    def loader(path, adapters=()):
        loads.append(adapters)
        if broken["on"]:
            raise OSError("the disk went away")
        return (styled if adapters else base), tokenizer

    jam = Jam(Preset(name="plain", mode="continuous"), clock=FakeClock(), port_opener=Ports(),
              models=ModelCache(loader))
    jam.start()
    jam.advance(1.0)
    jam.set_preset(Preset(name="styled", mode="continuous", model=ModelRef(adapters=(AdapterRef("mine", 1.0),))))
    assert jam.wait_for_model(10.0) and jam.model.model is styled
    jam.advance(2.0)
    jam.set_preset(Preset(name="plain", mode="continuous"))  # back: already loaded
    assert jam.wait_for_model(10.0) and jam.model.model is base
    jam.advance(3.0)
    assert [e.detail["model"] for e in jam.events() if e.kind == "model_changed"] == [
        f"{base_label()} + mine:1", base_label()]
    assert loads == [(), ((style_dir, 1.0),)]

    broken["on"] = True
    jam.set_preset(Preset(name="half", mode="continuous", model=ModelRef(adapters=(AdapterRef("mine", 0.5),))))
    assert jam.wait_for_model(10.0)
    assert jam.model.model is base and "the disk went away" in caplog.text
    calls = base.calls
    jam.advance(5.0)
    assert base.calls > calls and jam.preset.name == "half"  # the rest of the preset plays on the old model
    # A style that does not exist: the preset plays, the model stays.
    assert jam.set_preset(Preset(name="ghost", model=ModelRef(adapters=(AdapterRef("ghost"),)))) is False
    jam.stop()


def test_the_generation_thread_swaps_in_its_turn(playful, tokenizer):
    """Live: a swap queued between two chunks runs on the generation thread after the first
    chunk and before the second, which the new model writes."""
    old, new = Tagged(playful), Tagged(playful)
    passes: list[str] = []
    old._seen = lambda: passes.append("old")  # the order of every pass, both models
    new._seen = lambda: passes.append(f"new on {threading.current_thread().name}")
    results: queue.Queue = queue.Queue()
    worker = GenerationWorker(ChunkGenerator(old, tokenizer, seed=1), results.put)
    context = (Note(0.0, 0.4, 60, 90, 0), Note(0.5, 0.9, 64, 90, 0))
    sampling = Sampling(temperature=1.0, top_p=0.95)
    worker.start()
    try:
        worker.submit(ChunkRequest(0, 1.0, 1.0, context, 10.0, None, sampling))
        worker.submit(SwapRequest(new, "new", SyncRequest(context, 2.0, 10.0, None)))
        worker.submit(ChunkRequest(0, 2.0, 1.0, context, 10.0, None, sampling))
        got = [results.get(timeout=30) for _ in range(3)]
    finally:
        worker.stop()
    assert [type(r) for r in got] == [ChunkResult, ModelSwapped, ChunkResult]
    assert got[1].error is None and got[1].compute_s > 0 and got[2].error is None and got[2].tokens > 0
    first_new = passes.index("new on jamtui-generate")
    assert first_new > 0 and set(passes[:first_new]) == {"old"}  # the first chunk, all the old model's
    assert set(passes[first_new:]) == {"new on jamtui-generate"}  # then only the new one, on that thread
    assert len(passes) - first_new >= 1 + got[2].tokens  # its prefill of the context, then every token


def test_a_failed_swap_keeps_the_old_model(playful, tokenizer):
    chunks = ChunkGenerator(playful, tokenizer, seed=1)

    class Broken:
        def new_cache(self, max_len=None):
            raise RuntimeError("no memory left")

    result = chunks.swap(SwapRequest(Broken(), "broken", SyncRequest((), 0.0, 10.0, None)))
    assert isinstance(result.error, RuntimeError) and chunks.model is playful
    notes = chunks.run(ChunkRequest(0, 0.0, 2.0, (), 10.0, None, Sampling(temperature=1.0), enter=True)).notes
    assert notes and all(n.player == AI for n in notes)
