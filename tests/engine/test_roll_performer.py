"""One pianist's piano rolls out of a pianolatron-data checkout (`engine.style.roll_performer`):
one roll a title, in the order of the titles, named for composer and work, with a manifest; a
checkout that is not pianolatron-data's, or a catalogue entry without its fields, is refused with
the file named."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.style import roll_performer
from tests.engine.test_asap_performer import write_midi


def fake_rolls(root: Path, rolls: list[tuple[str, str, str]], missing: tuple[str, ...] = ()) -> Path:
    """A checkout with output/catalog.json and a one-note midi/exp/DRUID_exp.mid per (druid, performer, title)."""
    (root / "output").mkdir(parents=True)
    catalog = [{"druid": druid, "performer": performer, "title": title, "type": "welte-red", "number": "1"}
               for druid, performer, title in rolls]
    (root / "output" / "catalog.json").write_text(json.dumps(catalog))
    for number, (druid, _, _) in enumerate(rolls):
        if druid not in missing:
            write_midi(root / "midi" / "exp" / f"{druid}_exp.mid", 40 + number)
    return root


def test_a_performers_rolls_are_written_in_title_order_one_a_title(tmp_path, capsys):
    rolls = fake_rolls(tmp_path / "rolls", [
        ("bb222", "Johnson, Edward", "Youmans/Johnson - Tea for two: fox-trot"),
        ("aa111", "Johnson, Edward", "Friml/Johnson - Rose marie: fox-trot: from the musical play \"Rose Marie\""),
        ("cc333", "Johnson, Edward", "Youmans/Johnson - I want to be happy: fox-trot"),
        ("ab000", "Johnson, Edward", "Youmans/Johnson - Tea for two: fox-trot"),  # issued twice: the first id is kept
        ("dd444", "Johnson, Edward", "Gold/Johnson - Driftwood: fox-trot"),
        ("ee555", "Adam, Eugenie", "Adam - Hymns"),
        ("ff666", "", "Anonymous - A roll nobody is named for"),
    ], missing=("dd444",))
    out = tmp_path / "johnson"
    assert roll_performer.main(["--pianolatron", str(rolls), "--performer", "Johnson, Edward", "--out", str(out)]) == 0
    printed = [Path(p) for p in capsys.readouterr().out.split("\n") if p]
    assert [p.name for p in printed] == ["01_Friml_Rose_marie.mid", "02_Youmans_I_want_to_be_happy.mid",
                                         "03_Youmans_Tea_for_two.mid"]
    assert printed[2].read_bytes() == (rolls / "midi/exp/ab000_exp.mid").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["performer"] == "Johnson, Edward" and manifest["source"] == "pianolatron-data"
    assert manifest["corpus"] == ["01_Friml_Rose_marie.mid"]
    assert [f["source"] for f in manifest["files"]] == ["midi/exp/aa111_exp.mid", "midi/exp/cc333_exp.mid",
                                                       "midi/exp/ab000_exp.mid"]
    assert all(f["sha256"] == hashlib.sha256((out / f["file"]).read_bytes()).hexdigest() for f in manifest["files"])

    assert roll_performer.main(["--pianolatron", str(rolls), "--list"]) == 0
    listed = [line.split(None, 1) for line in capsys.readouterr().out.splitlines()]
    assert listed == [["3", "Johnson, Edward"], ["1", "Adam, Eugenie"]]  # Driftwood's file is not there


def test_piece_names_keep_composer_and_work():
    assert roll_performer.piece_name("Chopin/Albert - Nocturne op. 9, no. 1, b-flat minor") == \
        "Chopin_Nocturne_op_9_no_1_b_flat_minor"
    assert roll_performer.piece_name("Liszt/Albert - Soirée de vienne: I [i.e., 2]") == "Liszt_Soir_e_de_vienne"
    assert roll_performer.piece_name("Hymns") == "Hymns"
    assert roll_performer.piece_name("???") == "untitled"
    assert len(roll_performer.piece_name("A/B - " + "word " * 30)) <= 40


def test_what_cannot_be_used_is_named(tmp_path, capsys):
    rolls = fake_rolls(tmp_path / "rolls", [("aa111", "Johnson, Edward", "Friml/Johnson - Rose marie")])
    assert roll_performer.main(["--pianolatron", str(rolls), "--performer", "Johnson", "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "catalog.json" in error and "'Johnson'" in error and "Johnson, Edward" in error
    assert roll_performer.main(["--pianolatron", str(rolls), "--performer", "Johnson, Edward",
                                "--out", str(tmp_path / "o")]) == 2
    assert "recorded 1 pieces, need at least 3" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

    assert roll_performer.main(["--pianolatron", str(tmp_path / "nowhere"), "--list"]) == 2
    assert "nowhere/output/catalog.json: not found" in capsys.readouterr().err
    bad = tmp_path / "bad"
    (bad / "output").mkdir(parents=True)
    (bad / "output" / "catalog.json").write_text(json.dumps([{"druid": "x", "title": "T"}]))
    assert roll_performer.main(["--pianolatron", str(bad), "--list"]) == 2
    assert "catalog.json: roll 0 has no performer" in capsys.readouterr().err
    (bad / "output" / "catalog.json").write_text("{not json")
    assert roll_performer.main(["--pianolatron", str(bad), "--list"]) == 2
    assert "catalog.json: unreadable" in capsys.readouterr().err
