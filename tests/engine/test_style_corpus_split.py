"""A style corpus's split into training and validation files: by file, decided once when a
file is added, and a share of the music rather than of the files."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.style.corpus import VAL_FRACTION, open_corpus
from engine.user_dirs import corpora_dir
from tests.engine.corpus_helpers import add, manifest_of, scales
from tests.midi_fixtures import write_scale

pytestmark = pytest.mark.usefixtures("data_home")


def test_a_second_file_makes_a_val_split_and_the_first_stays_train(tmp_path: Path) -> None:
    first, _, _ = add("me", *scales(tmp_path / "a", 1))
    assert [e["split"] for e in first.added] == ["train"]  # a lone file trains
    second, _, _ = add("me", *scales(tmp_path / "a", 1, first=1))
    assert [e["split"] for e in manifest_of("me")["files"]] == ["train", "val"]
    assert open_corpus("me").files("val") == [corpora_dir() / "me" / "files" / second.added[0]["file"]]


def test_two_files_at_once_give_one_train_and_one_val(tmp_path: Path) -> None:
    add("me", *scales(tmp_path / "a", 2))
    assert sorted(e["split"] for e in manifest_of("me")["files"]) == ["train", "val"]


def test_the_split_of_a_file_never_moves_when_more_are_added(tmp_path: Path) -> None:
    add("me", *scales(tmp_path / "a", 6))
    before = {e["sha256"]: e["split"] for e in manifest_of("me")["files"]}
    assert "val" in before.values() and "train" in before.values()
    add("me", *scales(tmp_path / "b", 16, first=6))
    after = {e["sha256"]: e["split"] for e in manifest_of("me")["files"]}
    assert len(after) == 22
    assert {sha: after[sha] for sha in before} == before
    corpus = open_corpus("me")
    assert len(corpus.files("train")) + len(corpus.files("val")) == 22
    assert corpus.files() == sorted(corpus.files("train") + corpus.files("val"))
    val_s = sum(e["duration_s"] for e in corpus.entries if e["split"] == "val")
    assert 0 < val_s <= VAL_FRACTION * sum(e["duration_s"] for e in corpus.entries)


def test_files_rejects_an_unknown_split(tmp_path: Path) -> None:
    add("me", write_scale(tmp_path))
    with pytest.raises(ValueError):
        open_corpus("me").files("test")


def test_validation_takes_a_share_of_the_music_not_the_longest_file(tmp_path: Path) -> None:
    """Eight files, one of them ten times longer: whichever file the hash orders first, val
    keeps within VAL_FRACTION of the music and the long file trains."""
    short = [write_scale(tmp_path, name=f"short{i}.mid", notes=2 + i, step_s=0.5) for i in range(7)]
    long = write_scale(tmp_path, name="long.mid", notes=8, step_s=5.0)
    add("me", long, *short)
    entries = manifest_of("me")["files"]
    total_s = sum(e["duration_s"] for e in entries)
    val = [e for e in entries if e["split"] == "val"]
    assert val and sum(e["duration_s"] for e in val) <= VAL_FRACTION * total_s
    assert next(e for e in entries if Path(e["source"]).name == "long.mid")["split"] == "train"


def test_when_no_file_fits_the_share_the_shortest_new_file_validates(tmp_path: Path) -> None:
    add("me", write_scale(tmp_path, name="a.mid", notes=8, step_s=1.0),
        write_scale(tmp_path, name="b.mid", notes=8, step_s=0.5),
        write_scale(tmp_path, name="c.mid", notes=8, step_s=2.0))
    splits = {Path(e["source"]).name: e["split"] for e in manifest_of("me")["files"]}
    assert splits == {"a.mid": "train", "b.mid": "val", "c.mid": "train"}
