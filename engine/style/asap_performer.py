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

import argparse
import csv
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.midi.midifile import atomic_write

METADATA = "metadata.csv"
LICENCE = ("ASAP dataset (Foscarin et al., 2020) of MAESTRO v3 performances (Hawthorne et al., 2019), "
           "CC BY-NC-SA 4.0; for measuring only, never pre-trained on or redistributed")
DEFAULT_COUNT = 10
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "performers"
_COLUMNS = ("folder", "midi_performance")
# A performance file is named for its player, then a number, then M when MAESTRO has its audio:
# `MiyashitaM01M.mid` is player MiyashitaM; players who share a surname carry an initial.
_PERFORMANCE = re.compile(r"(?P<player>.+?)\d+M?")


class AsapError(Exception):
    """The checkout, its metadata or the player asked for cannot be used; the message names which."""


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


def pieces_by_player(performances: list[Performance]) -> dict[str, list[Performance]]:
    """Each player's performances, one a piece (the first by file name where they played it twice),
    ordered by the piece's folder."""
    players: dict[str, dict[str, Performance]] = {}
    for p in sorted(performances, key=lambda p: (p.folder, p.path.name)):
        players.setdefault(p.player, {}).setdefault(p.folder, p)
    return {player: list(pieces.values()) for player, pieces in players.items()}


def write_player(asap: Path, player: str, out: Path, count: int = DEFAULT_COUNT) -> list[Path]:
    """The player's first `count` pieces copied into `out` with a manifest; their paths in order."""
    players = pieces_by_player(read_performances(asap))
    if player not in players:
        close = sorted(p for p in players if p.lower().startswith(player.lower()[:3]))
        hint = f" (players with a name like it: {', '.join(close)})" if close else ""
        raise AsapError(f"{asap / METADATA}: no performer {player!r}{hint}; --list names them")
    if len(players[player]) < 3:
        raise AsapError(f"{asap / METADATA}: performer {player!r} recorded {len(players[player])} pieces, "
                        "need at least 3 (2 are held out)")
    pieces = players[player][:count]
    out.mkdir(parents=True, exist_ok=True)
    files, paths = [], []
    for number, piece in enumerate(pieces, start=1):
        data = piece.path.read_bytes()
        path = out / f"{number:02d}_{piece.folder.replace('/', '_')}.mid"
        atomic_write(path, lambda f, data=data: f.write(data))
        paths.append(path)
        files.append({"file": path.name, "source": str(piece.path.relative_to(asap)),
                      "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    manifest = {"source": "ASAP dataset", "performer": player, "licence": LICENCE,
                "corpus": [f["file"] for f in files[:-2]], "heldout": [f["file"] for f in files[-2:]],
                "files": files}
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(out / "manifest.json", lambda f: f.write(text.encode()))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.style.asap_performer",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--asap", type=Path, required=True, help="a checkout of the ASAP dataset")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="each player and how many pieces they recorded")
    what.add_argument("--performer", help="the player whose pieces to write, as --list names them")
    parser.add_argument("--out", type=Path, help=f"where the files go (default {DEFAULT_OUT}/PERFORMER)")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="how many pieces (default %(default)s)")
    args = parser.parse_args(argv)
    if args.count < 3:
        parser.error("--count must be at least 3 (2 are held out)")
    try:
        if args.list:
            players = pieces_by_player(read_performances(args.asap))
            for player, pieces in sorted(players.items(), key=lambda item: (-len(item[1]), item[0])):
                print(f"{len(pieces):3d}  {player}")
            return 0
        paths = write_player(args.asap, args.performer, args.out or DEFAULT_OUT / args.performer, args.count)
    except (AsapError, OSError) as exc:
        print(f"asap_performer: error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
