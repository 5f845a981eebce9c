"""Real piano performances the shipped base never saw, to measure a style on: the ten MAESTRO
performances (pianists of the Yamaha e-Competition, recorded on Disklavier pianos) that miditok
3.1.0 carries among the test files of its source archive.

The base was pre-trained on HANNDs (piano-midi.de's hand-sequenced files), rendered music21
scores and MMA accompaniment (docs/corpus.md): its hold-out Chopin pieces are new pieces by a
sequencer it knows, not a new pianist. These are human players at a real keyboard.

    python -m engine.style.maestro_sample [--out DIR] [--cache DIR]

writes `DIR/Maestro_N.mid` (N = 1..10) and `DIR/manifest.json` (where they came from, their
checksums and licence) and prints the files' paths, one per line: the first 8 for the corpus,
then the 2 held out (`CORPUS_FILES`, `HELDOUT_FILES`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tarfile
from pathlib import Path

from engine.midi.midifile import atomic_write
from engine.training.sources import SourceError, pip_download

MIDITOK_SDIST = "miditok==3.1.0"
MIDITOK_SDIST_FILE = "miditok-3.1.0.tar.gz"
MIDITOK_SDIST_SHA256 = "1f905b9be87a57dac28a86c1c7a7565674a5d2e57b2f650bc2fea97792f6bdef"
MEMBER_DIR = "miditok-3.1.0/tests/MIDIs_one_track/"
LICENCE = ("MAESTRO v3 (Hawthorne et al., 2019), CC BY-NC-SA 4.0, as shipped in miditok 3.1.0's tests; "
           "for measuring only, never pre-trained on or redistributed")
COUNT = 10
# The corpus takes the first 8 by number and the last 2 are held out; the numbers are miditok's.
CORPUS_FILES = tuple(f"Maestro_{n}.mid" for n in range(1, 9))
HELDOUT_FILES = ("Maestro_9.mid", "Maestro_10.mid")
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "maestro"
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / "data" / "cache"

_NAME = re.compile(r"Maestro_(\d+)\.mid")


def fetch_maestro(out: Path = DEFAULT_OUT, cache: Path = DEFAULT_CACHE) -> list[Path]:
    """The ten performances written into `out` (once; a second call checks and reuses them), in
    miditok's numbering. Raises SourceError when the archive cannot be had or is not the one pinned."""
    archive = pip_download(MIDITOK_SDIST, MIDITOK_SDIST_FILE, MIDITOK_SDIST_SHA256, cache, sdist=True)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    with tarfile.open(archive, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers()
                          if m.isfile() and m.name.startswith(MEMBER_DIR) and _NAME.fullmatch(Path(m.name).name)),
                         key=lambda m: int(_NAME.fullmatch(Path(m.name).name).group(1)))
        if len(members) != COUNT:
            raise SourceError(f"{archive}: {len(members)} MAESTRO files in {MEMBER_DIR}, expected {COUNT}")
        for member in members:
            data = tar.extractfile(member).read()
            path = out / Path(member.name).name
            if not path.is_file() or path.read_bytes() != data:
                atomic_write(path, lambda f, data=data: f.write(data))
            files.append({"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    manifest = {"source": MIDITOK_SDIST_FILE, "sha256": MIDITOK_SDIST_SHA256, "members": MEMBER_DIR,
                "licence": LICENCE, "corpus": list(CORPUS_FILES), "heldout": list(HELDOUT_FILES), "files": files}
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(out / "manifest.json", lambda f: f.write(text.encode()))
    return [out / f["file"] for f in files]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.style.maestro_sample", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where the files go (default {DEFAULT_OUT})")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the archive is downloaded once")
    args = parser.parse_args(argv)
    try:
        fetch_maestro(args.out, args.cache)
    except (SourceError, OSError, tarfile.TarError) as exc:
        print(f"maestro_sample: error: {exc}", file=sys.stderr)
        return 2
    for name in CORPUS_FILES + HELDOUT_FILES:
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
