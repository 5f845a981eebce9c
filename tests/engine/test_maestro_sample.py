"""The unseen performers the style goal is measured on (`engine.style.maestro_sample`): taken from
a pinned source archive, checked, written once with a manifest; a wrong archive is refused."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import mido
import pytest

from engine.style import maestro_sample
from engine.training.sources import SourceError


def midi_bytes(pitch: int) -> bytes:
    midi = mido.MidiFile()
    track = mido.MidiTrack([mido.Message("note_on", note=pitch, velocity=64, time=0),
                            mido.Message("note_off", note=pitch, velocity=0, time=480)])
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def fake_sdist(cache: Path, numbers, monkeypatch) -> Path:
    """A stand-in for miditok's source archive in the download cache, its checksum pinned."""
    path = cache / "downloads" / maestro_sample.MIDITOK_SDIST_FILE
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as tar:
        members = [(f"Maestro_{n}.mid", midi_bytes(40 + n)) for n in numbers]
        members += [("POP909_008.mid", midi_bytes(60)), ("README.md", b"not a performance")]
        for name, data in members:
            info = tarfile.TarInfo(maestro_sample.MEMBER_DIR + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(maestro_sample, "MIDITOK_SDIST_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    return path


def test_the_ten_performances_are_written_in_order_with_a_manifest(tmp_path, monkeypatch, capsys):
    fake_sdist(tmp_path / "cache", range(1, 11), monkeypatch)
    out = tmp_path / "maestro"
    assert maestro_sample.main(["--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == [f"Maestro_{n}.mid" for n in range(1, 11)]
    assert printed[-2:] == [str(out / name) for name in maestro_sample.HELDOUT_FILES]
    assert mido.MidiFile(printed[2]).tracks[0][0].note == 43
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sha256"] == maestro_sample.MIDITOK_SDIST_SHA256 and "CC BY-NC-SA" in manifest["licence"]
    assert [f["file"] for f in manifest["files"]][:3] == ["Maestro_1.mid", "Maestro_2.mid", "Maestro_3.mid"]
    assert all(f["sha256"] == hashlib.sha256((out / f["file"]).read_bytes()).hexdigest() for f in manifest["files"])
    assert not (out / "POP909_008.mid").exists()
    (out / "Maestro_4.mid").write_bytes(b"damaged")  # a second call puts the pinned file back
    maestro_sample.fetch_maestro(out, tmp_path / "cache")
    assert mido.MidiFile(out / "Maestro_4.mid").tracks[0][0].note == 44


def test_an_archive_without_the_ten_files_is_refused(tmp_path, monkeypatch, capsys):
    fake_sdist(tmp_path / "cache", range(1, 9), monkeypatch)
    with pytest.raises(SourceError, match="8 MAESTRO files"):
        maestro_sample.fetch_maestro(tmp_path / "out", tmp_path / "cache")
    assert maestro_sample.main(["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]) == 2
    assert "maestro_sample: error:" in capsys.readouterr().err


def test_an_archive_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch):
    fake_sdist(tmp_path / "cache", range(1, 11), monkeypatch)
    monkeypatch.setattr(maestro_sample, "MIDITOK_SDIST_SHA256", "0" * 64)
    with pytest.raises(SourceError, match="sha256"):
        maestro_sample.fetch_maestro(tmp_path / "out", tmp_path / "cache")
