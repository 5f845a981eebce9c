"""One pianist's recordings out of an ASAP checkout (`engine.style.asap_performer`): players told
apart by their file names, one performance a piece, written in order with a manifest; a checkout
that is not ASAP's, or a player it does not have, is refused with the file and the name."""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import mido
import pytest

from engine.style import asap_performer


def write_midi(path: Path, pitch: int) -> None:
    midi = mido.MidiFile()
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=pitch, velocity=64, time=0),
                                       mido.Message("note_off", note=pitch, velocity=0, time=480)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(path)


def fake_asap(root: Path, performances: list[tuple[str, str]], missing: tuple[str, ...] = ()) -> Path:
    """A checkout with metadata.csv (ASAP's columns) and a one-note MIDI file per (folder, file)."""
    root.mkdir(parents=True)
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["composer", "title", "folder", "xml_score", "midi_score", "midi_performance"])
        for number, (folder, name) in enumerate(performances):
            writer.writerow([folder.split("/")[0], folder, folder, "", "", f"{folder}/{name}"])
            if f"{folder}/{name}" not in missing:
                write_midi(root / folder / name, 40 + number)
    return root


def test_a_players_pieces_are_written_in_order_one_performance_a_piece(tmp_path, capsys):
    asap = fake_asap(tmp_path / "asap", [
        ("Chopin/Ballades/4", "SmithA04M.mid"),
        ("Bach/Fugue/bwv_848", "SmithA01M.mid"),
        ("Bach/Fugue/bwv_848", "Smith02.mid"),       # another player who shares the surname
        ("Bach/Prelude/bwv_848", "SmithA01M.mid"),
        ("Bach/Prelude/bwv_848", "SmithA07.mid"),     # the same piece again: the first by name is kept
        ("Liszt/Sonata", "SmithA09.mid"),
        ("Mozart/Piano_Sonatas/12-1", "SmithA03M.mid"),
    ], missing=("Liszt/Sonata/SmithA09.mid",))
    out = tmp_path / "smith"
    assert asap_performer.main(["--asap", str(asap), "--performer", "SmithA", "--out", str(out), "--count", "3"]) == 0
    printed = [Path(p) for p in capsys.readouterr().out.split()]
    assert [p.name for p in printed] == ["01_Bach_Fugue_bwv_848.mid", "02_Bach_Prelude_bwv_848.mid",
                                         "03_Chopin_Ballades_4.mid"]
    assert printed[0].read_bytes() == (asap / "Bach/Fugue/bwv_848/SmithA01M.mid").read_bytes()
    assert printed[1].read_bytes() == (asap / "Bach/Prelude/bwv_848/SmithA01M.mid").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["performer"] == "SmithA" and "CC BY-NC-SA" in manifest["licence"]
    assert manifest["corpus"] == ["01_Bach_Fugue_bwv_848.mid"]
    assert manifest["heldout"] == ["02_Bach_Prelude_bwv_848.mid", "03_Chopin_Ballades_4.mid"]
    assert [f["source"] for f in manifest["files"]] == ["Bach/Fugue/bwv_848/SmithA01M.mid",
                                                       "Bach/Prelude/bwv_848/SmithA01M.mid",
                                                       "Chopin/Ballades/4/SmithA04M.mid"]
    assert all(f["sha256"] == hashlib.sha256((out / f["file"]).read_bytes()).hexdigest() for f in manifest["files"])

    assert asap_performer.main(["--asap", str(asap), "--list"]) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert listed == [["4", "SmithA"], ["1", "Smith"]]  # the Liszt file is not in the checkout


def test_what_cannot_be_used_is_named(tmp_path, capsys):
    asap = fake_asap(tmp_path / "asap", [("Bach/Fugue/bwv_848", "SmithA01M.mid"),
                                         ("Bach/Prelude/bwv_848", "SmithA01M.mid")])
    assert asap_performer.main(["--asap", str(asap), "--performer", "Smith", "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "metadata.csv" in error and "'Smith'" in error and "SmithA" in error
    assert asap_performer.main(["--asap", str(asap), "--performer", "SmithA", "--out", str(tmp_path / "o")]) == 2
    assert "recorded 2 pieces, need at least 3" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

    assert asap_performer.main(["--asap", str(tmp_path / "nowhere"), "--list"]) == 2
    assert "nowhere/metadata.csv: not found" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "metadata.csv").write_text("file,title\na.mid,A\n")
    assert asap_performer.main(["--asap", str(tmp_path / "other"), "--list"]) == 2
    assert "no column folder, midi_performance" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        asap_performer.main(["--asap", str(asap), "--performer", "SmithA", "--count", "2"])
