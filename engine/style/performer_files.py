"""One pianist's own recordings taken out of a dataset's checkout (engine.style.asap_performer,
engine.style.roll_performer) and written the way `scripts/style-fit --files` reads a folder:
`NN_Name.mid` in the dataset's order, so the last two are the ones held out, with a manifest of
where each came from; and the command line both share (`--list`, `--performer NAME`)."""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.midi.midifile import atomic_write

DEFAULT_COUNT = 10
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "performers"
MIN_PIECES = 3  # 2 held out, at least 1 to learn from


class PerformerError(Exception):
    """The checkout, its catalogue or the player asked for cannot be used; the message names which."""


@dataclass(frozen=True)
class Piece:
    name: str  # what follows the number in the file's name: Composer_Work
    path: Path  # its MIDI file in the checkout


Players = Mapping[str, Sequence[Piece]]  # each player's pieces, in the order they are written


def players_pieces(players: Players, player: str, catalogue: Path) -> Sequence[Piece]:
    """`player`'s pieces; a player the catalogue does not have (with the names like it), or one with
    fewer than MIN_PIECES, is refused."""
    if player not in players:
        close = sorted(p for p in players if p.lower().startswith(player.lower()[:3]))
        hint = f" (players with a name like it: {', '.join(close)})" if close else ""
        raise PerformerError(f"{catalogue}: no performer {player!r}{hint}; --list names them")
    pieces = players[player]
    if len(pieces) < MIN_PIECES:
        raise PerformerError(f"{catalogue}: performer {player!r} recorded {len(pieces)} pieces, "
                             f"need at least {MIN_PIECES} (2 are held out)")
    return pieces


def write_pieces(pieces: Sequence[Piece], checkout: Path, out: Path, *, source: str, performer: str,
                 licence: str) -> list[Path]:
    """The pieces copied into `out` as NN_Name.mid with `manifest.json`; their paths in order."""
    out.mkdir(parents=True, exist_ok=True)
    files, paths = [], []
    for number, piece in enumerate(pieces, start=1):
        data = piece.path.read_bytes()
        path = out / f"{number:02d}_{piece.name}.mid"
        atomic_write(path, lambda f, data=data: f.write(data))
        paths.append(path)
        files.append({"file": path.name, "source": str(piece.path.relative_to(checkout)),
                      "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    manifest = {"source": source, "performer": performer, "licence": licence,
                "corpus": [f["file"] for f in files[:-2]], "heldout": [f["file"] for f in files[-2:]],
                "files": files}
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(out / "manifest.json", lambda f: f.write(text.encode()))
    return paths


def performer_main(argv: list[str] | None, *, prog: str, description: str, checkout_option: str,
                   checkout_help: str, read_players: Callable[[Path], tuple[Players, Path]], source: str,
                   licence: str) -> int:
    """`--list` (each player and how many pieces) or `--performer NAME [--out DIR] [--count N]`
    (that player's first N pieces written, their paths printed); `read_players(checkout)` gives the
    players and the catalogue file it read them from."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    parser.add_argument(checkout_option, dest="checkout", type=Path, required=True, help=checkout_help)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="each player and how many pieces they recorded")
    what.add_argument("--performer", help="the player whose pieces to write, as --list names them")
    parser.add_argument("--out", type=Path, help=f"where the files go (default {DEFAULT_OUT}/PERFORMER)")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="how many pieces (default %(default)s)")
    args = parser.parse_args(argv)
    if args.count < MIN_PIECES:
        parser.error(f"--count must be at least {MIN_PIECES} (2 are held out)")
    try:
        players, catalogue = read_players(args.checkout)
        if args.list:
            for player, pieces in sorted(players.items(), key=lambda item: (-len(item[1]), item[0])):
                print(f"{len(pieces):3d}  {player}")
            return 0
        pieces = players_pieces(players, args.performer, catalogue)[: args.count]
        paths = write_pieces(pieces, args.checkout, args.out or DEFAULT_OUT / args.performer, source=source,
                             performer=args.performer, licence=licence)
    except (PerformerError, OSError) as exc:
        print(f"{prog.rsplit('.', 1)[-1]}: error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
