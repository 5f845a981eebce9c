"""One pianist's own recordings from a century ago: the reproducing piano rolls (Welte-Mignon,
Duo-Art, ...) a player recorded, as MIDI, from the Stanford University Libraries' scans in the
pianolatron-data collection, which jamtui never ships and the base never saw. Some of these
pianists played their own arrangements of the popular songs of the day, the kind of player jamtui
is for.

    python -m engine.style.roll_performer --pianolatron CHECKOUT --list
    python -m engine.style.roll_performer --pianolatron CHECKOUT --performer "Johnson, Edward" [--out DIR] [--count 10]

CHECKOUT is a copy of https://github.com/pianoroll/pianolatron-data (its output/catalog.json and
the MIDI files in midi/exp/, with the roll's expression (dynamics) emulated). `--list` prints each
performer with how many different titles they recorded. `--performer` writes that performer's
first COUNT titles, one roll a title (ordered by title), as `DIR/NN_Composer_Work.mid` with
`DIR/manifest.json`, and prints the files' paths: `scripts/style-fit --files DIR` puts all but the
last 2 in a corpus and holds the last 2 out. The catalogue's titles are its own: one work issued
on two rolls under an English and a German title counts twice.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from engine.style.performer_files import Piece, PerformerError, Players, performer_main

CATALOG = Path("output") / "catalog.json"
MIDI_DIR = Path("midi") / "exp"  # the rolls with their expression emulated: notes, pedals, dynamics
LICENCE = ("Stanford University Libraries' piano roll scans, as MIDI in pianolatron-data (MIT licence); "
           "for measuring only, never pre-trained on or redistributed")
_FIELDS = ("performer", "title", "druid")
_NAME_CHARS = 40


class RollError(PerformerError):
    """The checkout or its catalogue cannot be used; the message names which."""


def piece_name(title: str) -> str:
    """`Friml/Johnson - Rose marie: fox-trot: from ...` -> `Friml_Rose_marie`: the composer and the
    work, before any subtitle, in letters, digits and underscores."""
    who, _, work = title.partition(" - ")
    composer = who.split("/")[0] if work else ""
    work = (work or who).split(":")[0]
    name = re.sub(r"[^A-Za-z0-9]+", "_", f"{composer} {work}").strip("_")
    return name[:_NAME_CHARS].rstrip("_") or "untitled"


def read_players(checkout: Path) -> tuple[Players, Path]:
    """Each performer's rolls whose MIDI file is in the checkout, one a title (the first by its
    catalogue id where a title was issued twice), ordered by title."""
    catalog = checkout / CATALOG
    try:
        rolls = json.loads(catalog.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RollError(f"{catalog}: not found: --pianolatron must be a checkout of pianolatron-data") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RollError(f"{catalog}: unreadable: {exc}") from None
    if not isinstance(rolls, list):
        raise RollError(f"{catalog}: not a list of rolls: not pianolatron-data's catalogue")
    for number, roll in enumerate(rolls):
        missing = [f for f in _FIELDS if not isinstance(roll, dict) or not isinstance(roll.get(f), str)]
        if missing:
            raise RollError(f"{catalog}: roll {number} has no {', '.join(missing)}")
    players: dict[str, dict[str, Piece]] = {}
    for roll in sorted(rolls, key=lambda r: (r["title"], r["druid"])):
        path = checkout / MIDI_DIR / f"{roll['druid']}_exp.mid"
        if roll["performer"].strip() and path.is_file():
            players.setdefault(roll["performer"], {}).setdefault(roll["title"], Piece(piece_name(roll["title"]), path))
    return {player: list(pieces.values()) for player, pieces in players.items()}, catalog


def main(argv: list[str] | None = None) -> int:
    return performer_main(argv, prog="engine.style.roll_performer", description=__doc__.split("\n\n")[0],
                          checkout_option="--pianolatron", checkout_help="a checkout of pianolatron-data",
                          read_players=read_players, source="pianolatron-data", licence=LICENCE)


if __name__ == "__main__":
    sys.exit(main())
