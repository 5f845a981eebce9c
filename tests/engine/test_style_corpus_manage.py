"""engine.style.corpus kept whole: an add that fails (an error, Ctrl-C, a full disk) leaves the
corpus as it was; names, opening a broken corpus, listing, the summary, and removing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import engine.style.corpus as corpus_module
from engine.style.corpus import CorpusError, add_files, list_corpora, open_corpus, remove_corpus, remove_file
from engine.user_dirs import corpora_dir
from tests.engine.corpus_helpers import add, manifest_of, scales, write_notes
from tests.midi_fixtures import write_scale

pytestmark = pytest.mark.usefixtures("data_home")


# --- an add that fails ---------------------------------------------------------------------

def snapshot(name: str) -> dict[str, bytes]:
    folder = corpora_dir() / name
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_an_add_that_fails_midway_leaves_the_corpus_as_it_was(tmp_path: Path, monkeypatch, failure) -> None:
    add("me", *scales(tmp_path / "a", 3))
    before = snapshot("me")
    real_keep = corpus_module.keep_file
    calls = []

    def keep_then_fail(path, scratch):
        calls.append(path)
        if len(calls) == 3:
            raise failure
        return real_keep(path, scratch)

    monkeypatch.setattr(corpus_module, "keep_file", keep_then_fail)
    with pytest.raises(type(failure)):
        add_files("me", scales(tmp_path / "b", 4, first=3))
    assert len(calls) == 3
    assert snapshot("me") == before


def test_an_add_that_fails_writing_the_manifest_leaves_no_new_file(tmp_path: Path, monkeypatch) -> None:
    add("me", *scales(tmp_path / "a", 3))
    before = snapshot("me")

    def fail(folder, manifest):
        assert len(manifest["files"]) == 5  # the new files were in place when it failed
        assert len(list((folder / "files").iterdir())) == 5
        raise OSError("no space left on device")

    monkeypatch.setattr(corpus_module, "_write_manifest", fail)
    with pytest.raises(OSError, match="no space"):
        add_files("me", scales(tmp_path / "b", 2, first=3))
    assert snapshot("me") == before


def test_a_first_add_that_fails_leaves_no_corpus(tmp_path: Path, monkeypatch) -> None:
    def fail(path, scratch):
        raise RuntimeError("x")

    monkeypatch.setattr(corpus_module, "keep_file", fail)
    with pytest.raises(RuntimeError):
        add_files("me", [write_scale(tmp_path)])
    assert list_corpora() == []
    assert not (corpora_dir() / "me").exists()


# --- names, opening, listing, removing -----------------------------------------------------

@pytest.mark.parametrize("name", [".hidden", "", "a/b", "x y", "..", "é", "a" * 101])
def test_an_invalid_name_is_refused_before_anything_is_read(tmp_path: Path, name: str) -> None:
    with pytest.raises(CorpusError, match="invalid corpus name"):
        add_files(name, [write_scale(tmp_path)])
    with pytest.raises(CorpusError, match="invalid corpus name"):
        open_corpus(name)
    assert not corpora_dir().exists() or list(corpora_dir().iterdir()) == []


def test_names_with_dots_dashes_and_underscores_are_fine(tmp_path: Path) -> None:
    add("my-style_1.v2", write_scale(tmp_path))
    assert list_corpora() == ["my-style_1.v2"]
    assert open_corpus("my-style_1.v2").name == "my-style_1.v2"


def test_opening_an_unknown_or_broken_corpus_says_which_and_why(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="^no corpus named nobody "):
        open_corpus("nobody")
    result, _, _ = add("me", write_scale(tmp_path))
    (corpora_dir() / "me" / "files" / result.added[0]["file"]).unlink()
    with pytest.raises(CorpusError, match=f"^corpus me is broken: files/{result.added[0]['file']} "):
        open_corpus("me")
    (corpora_dir() / "me" / "manifest.json").write_text("{not json")
    with pytest.raises(CorpusError, match="^corpus me is broken: cannot read .*manifest.json") as caught:
        open_corpus("me")
    assert "\n" not in str(caught.value)
    (corpora_dir() / "me" / "manifest.json").write_text(json.dumps({"format": 1, "files": [{"sha256": "ab"}]}))
    with pytest.raises(CorpusError, match="file 1 .* lacks source, file"):
        open_corpus("me")


def test_list_and_the_summary(tmp_path: Path) -> None:
    add("zeta", write_scale(tmp_path))
    (tmp_path / "b").mkdir()
    add("alpha", write_scale(tmp_path / "b", name="scale-b.mid", notes=4, step_s=0.5),
        write_notes(tmp_path / "low.mid", [(0.0, 1.0, 40, 0), (4.0, 5.0, 90, 0)]))
    assert list_corpora() == ["alpha", "zeta"]
    summary = open_corpus("alpha").summary()
    files = summary.pop("files")
    assert [Path(f["source"]).name for f in files] == ["scale-b.mid", "low.mid"]
    assert summary.pop("path") == str(corpora_dir() / "alpha")
    splits = summary.pop("splits")
    assert splits["train"]["n_files"] + splits["val"]["n_files"] == 2 and splits["val"]["n_files"] == 1
    assert splits["train"]["n_notes"] + splits["val"]["n_notes"] == 6
    assert summary == {
        "name": "alpha", "n_files": 2, "hours": round(7.0 / 3600, 4), "duration_s": 7.0, "n_notes": 6,
        "pitch_range": [40, 90], "tempo_bpm": 120.0, "tempo_method": corpus_module.TEMPO_METHOD,
        # 4 notes in 2 s of playing, and 2 notes that each sound 1 s with a rest of 3 s between.
        "density_nps": round(6 / 4.0, 2), "density_method": "while playing: silences of 2 s or more left out",
    }


def test_remove_one_file_by_source_stored_name_or_hash(tmp_path: Path) -> None:
    result, _, _ = add("me", *scales(tmp_path / "a", 4))
    by_source, by_name, by_hash, kept = result.added
    assert remove_file("me", by_source["source"])["sha256"] == by_source["sha256"]
    assert remove_file("me", by_name["file"])["sha256"] == by_name["sha256"]
    assert remove_file("me", by_hash["sha256"][:6].upper())["sha256"] == by_hash["sha256"]
    assert [e["sha256"] for e in manifest_of("me")["files"]] == [kept["sha256"]]
    assert [p.name for p in (corpora_dir() / "me" / "files").iterdir()] == [kept["file"]]
    assert manifest_of("me")["files"][0]["split"] == kept["split"]
    with pytest.raises(CorpusError, match="^corpus me has no file 'nothing.mid' "):
        remove_file("me", "nothing.mid")
    with pytest.raises(CorpusError, match="^no corpus named other "):
        remove_file("other", "x")


def test_remove_a_relative_source_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_scale(tmp_path)
    add("me", Path("scale.mid"))
    assert manifest_of("me")["files"][0]["source"] == str(tmp_path / "scale.mid")
    remove_file("me", "scale.mid")
    assert manifest_of("me")["files"] == []


def test_remove_a_whole_corpus(tmp_path: Path) -> None:
    add("me", *scales(tmp_path / "a", 3))
    add("you", write_scale(tmp_path))
    assert remove_corpus("me") == 3
    assert list_corpora() == ["you"]
    assert sorted(p.name for p in corpora_dir().iterdir() if not p.name.startswith(".")) == ["you"]
    with pytest.raises(CorpusError, match="^no corpus named me "):
        remove_corpus("me")
    with pytest.raises(CorpusError, match="^no corpus named me "):
        open_corpus("me")
