"""Prime phrases: a preset's MIDI files read as the AI's notes in a fixed prefix of the model's
context, which rollbacks and the sliding window never reach, and which changes what the model plays."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mido
import pytest
import torch

from engine.duet.context import PLAY_ROOM_TOKENS, PRIME_SHARE, TRAINED_TOKENS, ContextStream
from engine.duet.prime import PHRASE_GAP_S, prime_ids, read_prime
from engine.duet.worker import ChunkGenerator, ChunkRequest
from engine.events import AI, PERFORMER, Note
from engine.model.sampling import Sampling
from engine.presets.files import load_preset
from engine.presets.schema import ModelRef, Preset, PresetError, dump_preset, resolve_prime
from engine.tokens.decoder import IncrementalDecoder
from engine.tokens.grammar import NoteGrammar
from engine.tokens.tokenizer import BOS, CONDITION

BLACK_KEYS = {1, 3, 6, 8, 10}  # C# D# F# G# A#: the pitch classes of the prime below
PENTATONIC = [61, 63, 66, 68, 70, 73, 75, 78, 73, 70, 68, 66, 63, 61, 58, 61]
C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60, 67]


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    from engine.model.checkpoint import load_checkpoint

    return load_checkpoint(tiny_checkpoint, warmup=False).model


@pytest.fixture(scope="module")
def shipped(one_thread):
    from engine.model.checkpoint import load_checkpoint
    from engine.model.config import DEFAULT_MODEL_DIR

    return load_checkpoint(DEFAULT_MODEL_DIR).model


def line(start_s: float, pitches, player=PERFORMER, step_s=0.25) -> list[Note]:
    return [Note(start_s + i * step_s, start_s + i * step_s + 0.2, p, 80, player) for i, p in enumerate(pitches)]


def write_phrase(path: Path, pitches, *, step_s=0.25, channel=0, drums=()) -> Path:
    """A type-0 file at 120 bpm (240 ticks = 0.25 s): `pitches` one per step on `channel`, and
    `drums` struck on channel 10 at the same steps."""
    track = mido.MidiTrack()
    events = []
    for i, pitch in enumerate(pitches):
        events += [(i * 240, mido.Message("note_on", channel=channel, note=pitch, velocity=80)),
                   (i * 240 + 200, mido.Message("note_off", channel=channel, note=pitch, velocity=0))]
    for i, pitch in enumerate(drums):
        events += [(i * 240, mido.Message("note_on", channel=9, note=pitch, velocity=100)),
                   (i * 240 + 100, mido.Message("note_off", channel=9, note=pitch, velocity=0))]
    last = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - last))
        last = tick
    path.parent.mkdir(parents=True, exist_ok=True)
    mido.MidiFile(type=0, ticks_per_beat=480, tracks=[track]).save(path)
    return path


def primed_preset(tmp_path: Path, files: list[str], extra: str = "") -> Preset:
    listed = ", ".join(f'"{f}"' for f in files)
    path = tmp_path / "primed.toml"
    path.write_text(f"[model]\nprime = [{listed}]\n{extra}", encoding="utf-8")
    return load_preset(path)


def prime_error(preset: Preset) -> PresetError:
    with pytest.raises(PresetError) as info:
        read_prime(preset)
    assert "\n" not in str(info.value)
    return info.value


# -- the preset's keys and files ------------------------------------------------------------


def test_prime_keys_load_resolve_and_round_trip(tmp_path):
    write_phrase(tmp_path / "phrases" / "a.mid", [60, 62])
    write_phrase(tmp_path / "b.mid", [64])
    preset = primed_preset(tmp_path, ["phrases/a.mid", "b.mid"], "prime_s = 4.5\n")
    assert preset.model.prime == ("phrases/a.mid", "b.mid") and preset.model.prime_s == 4.5
    assert resolve_prime(preset) == [tmp_path.resolve() / "phrases" / "a.mid", tmp_path.resolve() / "b.mid"]
    again = tmp_path / "again.toml"
    again.write_text(dump_preset(preset), encoding="utf-8")
    assert load_preset(again) == preset
    assert Preset().model.prime == () and Preset().model.prime_s == 8.0
    one = tmp_path / "one.toml"
    one.write_text('[model]\nprime = "b.mid"\n', encoding="utf-8")
    assert load_preset(one).model.prime == ("b.mid",)


@pytest.mark.parametrize("text, key, reason", [
    ("[model]\nprime_s = 0.5\n", "model.prime_s", "between 1 and 30"),
    ("[model]\nprime = 3\n", "model.prime", "expected a string or a list of strings"),
    ('[model]\nprime = ["a.mid", "a.mid"]\n', "model.prime", "repeat"),
])
def test_bad_prime_keys_name_the_file_and_key(tmp_path, text, key, reason):
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PresetError) as info:
        load_preset(path)
    assert info.value.key == key and str(info.value).startswith(f"preset {path}: {key}: ") and reason in str(info.value)


def test_a_missing_unreadable_or_drums_only_file_is_one_line_naming_preset_key_and_file(tmp_path):
    write_phrase(tmp_path / "ok.mid", [60])
    (tmp_path / "junk.mid").write_bytes(b"not a midi file at all")
    write_phrase(tmp_path / "drums.mid", [], drums=[36, 38])
    cases = [("gone.mid", "no such file"), ("junk.mid", "not a MIDI file"), ("drums.mid", "no notes but drums")]
    for name, reason in cases:
        preset = primed_preset(tmp_path, ["ok.mid", name])
        error = prime_error(preset)
        assert error.key == "model.prime[1]"
        assert str(error).startswith(f"preset {tmp_path / 'primed.toml'}: model.prime[1]: ")
        assert name in str(error) and reason in str(error)


def test_phrases_follow_one_another_as_the_ai_cut_at_prime_s(tmp_path):
    write_phrase(tmp_path / "a.mid", [60, 62, 64, 65], drums=[36, 38, 42, 46])  # 1.0 s minus the last release
    write_phrase(tmp_path / "b.mid", [67, 69, 71, 72, 74, 76, 77, 79])
    notes = read_prime(primed_preset(tmp_path, ["a.mid", "b.mid"], "prime_s = 2.0\n"))
    assert all(n.player == AI for n in notes)
    assert [n.pitch for n in notes] == [60, 62, 64, 65, 67, 69, 71]  # no drums; b's notes from 2.0 s on left out
    b_starts_s = 0.75 + 200 / 960 + PHRASE_GAP_S  # a's last note ends (200 ticks after its onset), a breath
    assert [n.start_s for n in notes[4:]] == pytest.approx([b_starts_s, b_starts_s + 0.25, b_starts_s + 0.5])


def test_prime_tokens_drop_whole_notes_from_the_start_and_end_past_the_phrase(tokenizer):
    prime = line(0.0, PENTATONIC * 4, AI)  # 16 s, 64 notes
    ids = prime_ids(prime, tokenizer, 64)
    assert 0 < len(ids) <= 64
    assert tokenizer.tokens(ids[:1]) == ["Program_1"]  # a whole note first, at once
    decoder = IncrementalDecoder(tokenizer)
    kept = decoder.feed_all(ids)
    assert decoder.problem_count == 0 and decoder.at_boundary
    assert [n.pitch for n in kept] == [n.pitch for n in prime[-len(kept):]]  # the latest notes stay
    # After the last note: a time shift past its end and a breath, so the jam comes after it.
    assert decoder.now_s == pytest.approx(kept[-1].end_s + PHRASE_GAP_S, abs=2 * tokenizer.tick_s)
    assert prime_ids((), tokenizer, 64) == []


# -- the stream: a fixed prefix ---------------------------------------------------------------


def window_keys(stream: ContextStream, tokenizer) -> list[tuple[int, int, int]]:
    decoder = IncrementalDecoder(tokenizer, start_s=stream.origin_s)
    notes = decoder.feed_all(stream.cache.token_ids()[stream.header_tokens:])
    assert decoder.problem_count == 0
    return [(round((n.start_s - stream.origin_s) / tokenizer.tick_s), n.player, n.pitch) for n in notes]


def assert_exact(stream: ContextStream, model, tokenizer, prime_tokens: list[int]) -> None:
    """The cache is a fresh prefill of BOS, conditions, the prime, then the window's notes."""
    stream.flush()
    ids = stream.cache.token_ids()
    start = stream.header_tokens - len(prime_tokens)
    assert ids[start:stream.header_tokens] == prime_tokens
    assert tokenizer.kind(ids[0]) == BOS and all(tokenizer.kind(i) == CONDITION for i in ids[1:start])
    assert window_keys(stream, tokenizer) == stream.keys()
    fresh = model.new_cache()
    torch.testing.assert_close(stream.cache.last_logits, model.prefill(ids, fresh), atol=1e-4, rtol=1e-4)


def test_the_prime_opens_the_context_and_a_rollback_never_reaches_it(model, tokenizer):
    prime = tuple(line(0.0, PENTATONIC, AI))
    tokens = prime_ids(prime, tokenizer, TRAINED_TOKENS // PRIME_SHARE)
    stream = ContextStream(model, tokenizer, context_s=10.0)
    base, ai = line(0.0, [60, 62, 64]), line(1.0, [72, 74, 76, 77], player=AI)
    stream.sync(base + ai, 2.0, None, prime=prime)
    assert stream.prime_tokens == len(tokens) > 0 and stream.rebuilds == 1
    assert_exact(stream, model, tokenizer, tokens)
    # A late performer note rolls back to the first difference; the prime stays as it was.
    revised = base + [Note(1.3, 1.5, 55, 70, PERFORMER)] + [n for n in ai if n.pitch != 76]
    stream.sync(revised, 2.0, None, prime=prime)
    assert stream.rebuilds == 1
    assert_exact(stream, model, tokenizer, tokens)
    stream.sync([], 2.0, None, prime=prime)  # everything played is taken back: only the prime is left
    stream.flush()
    assert stream.keys() == [] and stream.cache.token_ids()[-len(tokens):] == tokens
    assert_exact(stream, model, tokenizer, tokens)


def test_the_window_slides_behind_the_prime(model, tokenizer):
    import random

    rng = random.Random(0)
    prime = tuple(line(0.0, PENTATONIC * 4, AI, step_s=0.125))  # dense: more than its share
    tokens = prime_ids(prime, tokenizer, TRAINED_TOKENS // PRIME_SHARE)
    assert len(tokens) > TRAINED_TOKENS // PRIME_SHARE - 8
    stream = ContextStream(model, tokenizer, context_s=10.0)
    notes: list[Note] = []
    for bar in range(40):  # ~8 notes a second
        t = bar * 1.0
        notes += [Note(t + i * 0.125, t + i * 0.125 + 0.1, rng.randint(40, 90), 80, bar % 2) for i in range(8)]
        stream.sync(notes, t + 1.0, None, prime=prime)
        assert stream.length <= TRAINED_TOKENS - PLAY_ROOM_TOKENS  # prime and window within the trained length
    assert stream.rebuilds >= 2 and stream.origin_s > 20.0
    assert_exact(stream, model, tokenizer, tokens)


class Counted:
    """A model that counts the tokens run through it."""

    def __init__(self, model) -> None:
        self._model, self.tokens = model, 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def prefill(self, token_ids, cache):
        self.tokens += len(token_ids)
        return self._model.prefill(token_ids, cache)

    def extend(self, token_ids, cache):
        self.tokens += len(token_ids)
        return self._model.extend(token_ids, cache)


def test_another_prime_rebuilds_and_a_rebuild_keeps_the_prefix_it_shares(model, tokenizer):
    from engine.tokens.conditions import Conditions

    first, second = tuple(line(0.0, PENTATONIC, AI)), tuple(line(0.0, C_MAJOR, AI))
    stream = ContextStream(model, tokenizer, context_s=10.0)
    notes = line(0.0, [60, 62, 64, 65])
    stream.sync(notes, 1.0, None, prime=first)
    stream.sync(notes, 1.0, None, prime=list(first))  # the same notes, in a list: nothing to do
    assert stream.rebuilds == 1
    stream.sync(notes, 1.0, None, prime=second)
    assert stream.rebuilds == 2
    assert_exact(stream, model, tokenizer, prime_ids(second, tokenizer, TRAINED_TOKENS // PRIME_SHARE))
    stream.sync(notes, 1.0, None)  # no prime any more
    assert stream.rebuilds == 3 and stream.prime_tokens == 0
    assert_exact(stream, model, tokenizer, [])
    # The window moves on (conditions all given: the header stays): the rebuild runs only what
    # follows the unchanged BOS, conditions and prime.
    counted = Counted(model)
    stream = ContextStream(counted, tokenizer, context_s=10.0)
    given = Conditions(genre="jazz-comping", tempo_bpm=120.0, key="C", density_nps=4.0)
    stream.sync(notes, 1.0, given, prime=first)
    held = stream.cache.token_ids()[:stream.header_tokens]
    counted.tokens = 0
    stream.rebuild(notes + line(10.0, [67, 69]), 11.0, given, first)  # the window now starts at 1.0 s
    assert stream.cache.token_ids()[:stream.header_tokens] == held
    assert counted.tokens == stream.cache.length - stream.header_tokens
    assert_exact(stream, model, tokenizer, prime_ids(first, tokenizer, TRAINED_TOKENS // PRIME_SHARE))


def test_the_generation_thread_primes_the_context_its_requests_carry(model, tokenizer):
    chunks = ChunkGenerator(model, tokenizer, seed=0)
    prime = tuple(line(0.0, PENTATONIC, AI))
    request = ChunkRequest(0, 1.0, 0.5, tuple(line(0.0, [60, 62, 64])), 10.0, None, Sampling(temperature=1.0),
                           prime=prime)
    assert chunks.run(request).error is None
    tokens = prime_ids(prime, tokenizer, TRAINED_TOKENS // PRIME_SHARE)
    header = chunks.stream.header_tokens
    assert chunks.stream.cache.token_ids()[header - len(tokens):header] == tokens


# -- what the model plays ------------------------------------------------------------------------


def black_key_share(model, tokenizer, prime, seeds=range(6)) -> float:
    """The share of the AI's notes on black keys, over 8 s after a C major line, pooled over seeds."""
    grammar = NoteGrammar(tokenizer, (AI,))
    black = total = 0
    for seed in seeds:
        stream = ContextStream(model, tokenizer, context_s=10.0)
        stream.sync(line(0.0, C_MAJOR), 4.0, None, prime=prime)
        played = stream.play(4.0, 12.0, Sampling(temperature=0.95, top_p=0.95, repetition_penalty=1.05), grammar,
                             generator=torch.Generator().manual_seed(seed), enter=True)
        ai = [n for n in played.notes if n.player == AI]
        black += sum(n.pitch % 12 in BLACK_KEYS for n in ai)
        total += len(ai)
    return black / total


def test_the_prime_moves_the_shipped_models_pitch_classes_toward_its_own(shipped, tokenizer):
    prime = tuple(line(0.0, PENTATONIC * 2, AI))  # 8 s of black-key pentatonic, as the AI
    without, primed = black_key_share(shipped, tokenizer, ()), black_key_share(shipped, tokenizer, prime)
    assert primed > without + 0.08, (without, primed)  # measured: 0.05 -> 0.24 (seeds 6-19: 0.15 -> 0.22)


def test_generate_reads_the_prime_first(shipped, tokenizer):
    from engine.offline.continuation import continue_notes

    prime = tuple(line(0.0, PENTATONIC * 2, AI))
    prompt = line(0.0, C_MAJOR)
    plain, _ = continue_notes(shipped, tokenizer, prompt, 6.0, seed=3, guided=False)
    primed, _ = continue_notes(shipped, tokenizer, prompt, 6.0, seed=3, guided=False, prime=prime)
    assert plain != primed  # the same seed, another context


# -- the session and `jamtui simulate` ---------------------------------------------------------------


class Reading:
    """A model that keeps the cache it last read into: what the session's context holds."""

    def __init__(self, model) -> None:
        self._model, self.cache = model, None

    def __getattr__(self, name):
        return getattr(self._model, name)

    def prefill(self, token_ids, cache):
        self.cache = cache
        return self._model.prefill(token_ids, cache)

    def extend(self, token_ids, cache):
        self.cache = cache
        return self._model.extend(token_ids, cache)

    def decode_one(self, token, cache):
        self.cache = cache
        return self._model.decode_one(token, cache)

    def holds(self, tokens: list[int]) -> bool:
        ids = self.cache.token_ids()
        return any(ids[i:i + len(tokens)] == tokens for i in range(len(ids) - len(tokens) + 1))


def test_a_session_reads_its_presets_prime_and_a_switch_takes_it_at_the_next_rebuild(tmp_path, tokenizer, playful):
    from tests.engine.sessions import advance, note_ons, phrase

    from engine.clock import FakeClock, s_to_ns
    from engine.duet.session import Session
    from engine.midi.memory import MemoryInputPort, MemoryOutputPort
    from tests.midi_checks import assert_balanced

    write_phrase(tmp_path / "lick.mid", PENTATONIC * 2)
    primed = replace(primed_preset(tmp_path, ["lick.mid"]), mode="call-and-response", phrase_gap_s=0.5)
    tokens = prime_ids(read_prime(primed), tokenizer, TRAINED_TOKENS // PRIME_SHARE)
    assert len(tokens) > 100

    def jam(preset, switch_to=None):
        model = Reading(playful)
        clock = FakeClock(start_ns=s_to_ns(100.0))
        inp, out = MemoryInputPort(), MemoryOutputPort(clock)
        session = Session(inp, out, model, tokenizer, preset, clock=clock, seed=1)
        session.start(live=False)
        phrase(inp, clock, session, 0.0, C_MAJOR[:8])
        advance(session, clock, 4.0)
        held_before = model.holds(tokens)
        if switch_to is not None:
            session.set_preset(switch_to)
        phrase(inp, clock, session, 4.0, C_MAJOR[:8])
        advance(session, clock, 8.0)
        session.stop()
        assert note_ons(out.events)
        assert_balanced(out.events)
        return held_before, model.holds(tokens)

    assert jam(primed) == (True, True)  # from the first note on
    assert jam(Preset(mode="call-and-response", phrase_gap_s=0.5)) == (False, False)
    assert jam(Preset(mode="call-and-response", phrase_gap_s=0.5), switch_to=primed) == (False, True)


def test_a_session_or_simulation_with_an_unreadable_prime_does_not_start(tmp_path, tokenizer, playful):
    from engine.clock import FakeClock
    from engine.duet.session import Session
    from engine.midi.memory import MemoryInputPort, MemoryOutputPort
    from engine.offline.simulate import simulate
    from tests.midi_fixtures import write_scale

    preset = primed_preset(tmp_path, ["gone.mid"])
    clock = FakeClock()
    with pytest.raises(PresetError, match=r"model\.prime\[0\]: no such file"):
        Session(MemoryInputPort(), MemoryOutputPort(clock), playful, tokenizer, preset, clock=clock)
    out = tmp_path / "duet.mid"
    with pytest.raises(PresetError, match=r"model\.prime\[0\]"):
        simulate(write_scale(tmp_path), playful, tokenizer, preset, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["primed.toml", "scale.mid"]  # nothing written


def test_a_preset_switch_to_an_unreadable_prime_plays_on_without_it(tmp_path, tokenizer, playful, caplog):
    from tests.engine.sessions import advance, make, note_ons, phrase

    clock, inp, out, session, seen = make(tokenizer, playful, "call-and-response", phrase_gap_s=0.5)
    session.set_preset(replace(primed_preset(tmp_path, ["gone.mid"]), mode="call-and-response"))
    phrase(inp, clock, session, 0.0, C_MAJOR[:8])
    advance(session, clock, 4.0)
    assert session.preset.name == "primed" and note_ons(out.events)
    assert "model.prime[0]: no such file" in caplog.text and "playing without the prime" in caplog.text
    session.stop()
