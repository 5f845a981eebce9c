"""One pianist's own recordings, to measure a style the way the issue means it: the performances
of one player in the ASAP dataset (Foscarin et al., 2020: MAESTRO's Disklavier recordings of
e-Competition pianists, cut into pieces and named for their player), which jamtui never ships
and the base never saw.

    python -m engine.style.asap_performer --asap CHECKOUT --list
    python -m engine.style.asap_performer --asap CHECKOUT --performer NAME [--out DIR] [--count 10]

CHECKOUT is a copy of https://github.com/fosfrancesco/asap-dataset (its metadata.csv and MIDI
files). `--list` prints each player with how many different pieces they recorded. `--performer`
writes that player's first COUNT pieces, one performance a piece (ordered by the piece's folder),
as `DIR/NN_Composer_Piece.mid` with `DIR/manifest.json` (where each came from, checksums, licence),
and prints the files' paths: `scripts/style-fit --files DIR` puts all but the last 2 in a corpus
and holds the last 2 out.
"""
from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.style.performer_files import Piece, PerformerError, Players, performer_main

METADATA = "metadata.csv"
LICENCE = ("ASAP dataset (Foscarin et al., 2020) of MAESTRO v3 performances (Hawthorne et al., 2019), "
           "CC BY-NC-SA 4.0; for measuring only, never pre-trained on or redistributed")
_COLUMNS = ("folder", "midi_performance")
# A performance file is named for its player, then a number, then M when MAESTRO has its audio:
# `MiyashitaM01M.mid` is player MiyashitaM; players who share a surname carry an initial.
_PERFORMANCE = re.compile(r"(?P<player>.+?)\d+M?")


class AsapError(PerformerError):
    """The checkout or its metadata cannot be used; the message names which."""


@dataclass(frozen=True)
class Performance:
    player: str
    folder: str  # the piece: Composer/Work/Part
    path: Path


def read_performances(asap: Path) -> list[Performance]:
    """Every performance listed in the checkout's metadata.csv whose MIDI file is there."""
    metadata = asap / METADATA
    try:
        with metadata.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise AsapError(f"{metadata}: no column {', '.join(missing)}: not ASAP's metadata")
            rows = list(reader)
    except FileNotFoundError:
        raise AsapError(f"{metadata}: not found: --asap must be a checkout of the ASAP dataset") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AsapError(f"{metadata}: unreadable: {exc}") from None
    performances = []
    for line, row in enumerate(rows, start=2):
        relative = row["midi_performance"] or ""
        match = _PERFORMANCE.fullmatch(Path(relative).stem)
        if not match or not row["folder"]:
            raise AsapError(f"{metadata}:{line}: performance {relative!r} is not named for its player")
        path = asap / relative
        if path.is_file():
            performances.append(Performance(match["player"], row["folder"], path))
    return performances


def pieces_by_player(performances: list[Performance]) -> dict[str, list[Piece]]:
    """Each player's performances, one a piece (the first by file name where they played it twice),
    ordered by the piece's folder."""
    players: dict[str, dict[str, Piece]] = {}
    for p in sorted(performances, key=lambda p: (p.folder, p.path.name)):
        players.setdefault(p.player, {}).setdefault(p.folder, Piece(p.folder.replace("/", "_"), p.path))
    return {player: list(pieces.values()) for player, pieces in players.items()}


def read_players(asap: Path) -> tuple[Players, Path]:
    return pieces_by_player(read_performances(asap)), asap / METADATA


def main(argv: list[str] | None = None) -> int:
    return performer_main(argv, prog="engine.style.asap_performer", description=__doc__.split("\n\n")[0],
                          checkout_option="--asap", checkout_help="a checkout of the ASAP dataset",
                          read_players=read_players, source="ASAP dataset", licence=LICENCE)


if __name__ == "__main__":
    sys.exit(main())
