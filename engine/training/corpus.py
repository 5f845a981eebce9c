"""The pre-training corpus: the split by piece, and the writer of `OUT/{train,val,holdout}`
with checksummed manifests.

Reading MIDI into Notes is `engine.training.midi_files`, augmentation `engine.training.augment`;
where the pieces come from (HANNDs, music21, MMA) is `engine.training.sources` and its
`source_*` modules.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from engine.events import SUSTAIN_CC
from engine.midi.midifile import MidiFileError
from engine.training.midi_files import load_midi, normalize_midi, read_notes

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "holdout")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
DEFAULT_VAL_FRACTION = 0.05

OnStep = Callable[[str, int, int], None]
"""`on_step(stage, done, total)`: called as each item of a long stage finishes."""


# --- splitting -----------------------------------------------------------------------------

def hash_rank(piece_id: str) -> float:
    """A number in [0, 1) from a hash of the piece id alone: stable across runs and machines."""
    return int.from_bytes(hashlib.sha256(piece_id.encode()).digest()[:8], "big") / 2**64


def split_for(piece_id: str, val_fraction: float = DEFAULT_VAL_FRACTION) -> str:
    """"val" or "train", from a hash of the piece id alone."""
    return "val" if hash_rank(piece_id) < val_fraction else "train"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def slug(piece_id: str) -> str:
    """A file name for a piece id: `m21/bach/bwv66.6` -> `m21_bach_bwv66.6`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", piece_id).strip("._") or "piece"


# --- writing -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One piece a source offers: its MIDI as fetched or rendered, and where it came from.

    `layout` "hands": a two-track file with the right hand first (HANNDs: "Rechts", "Links");
    it is written left hand as track 0 (channel 1), right hand as track 1 (channel 2).
    "parts": every pitched track (or channel of a track) becomes a track; drums are dropped.
    """

    id: str
    source: str
    origin: str
    raw_path: Path
    tags: Mapping[str, Any] = field(default_factory=dict)
    layout: str = "parts"
    holdout: bool = False


def build_corpus(
    candidates: Sequence[Candidate],
    out_dir: str | Path,
    *,
    sources: Mapping[str, Mapping[str, Any]] | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    on_step: OnStep | None = None,
) -> dict[str, Any]:
    """Write every candidate into `out_dir/{train,val,holdout}` with the manifests; return
    the main manifest. `sources` holds each source's description and the items it already
    skipped; files that fail here are added to those skips. The old split folders and
    manifest are replaced only once the new ones are complete.
    """
    out_dir = Path(out_dir)
    duplicates = sorted(i for i, n in Counter(c.id for c in candidates).items() if n > 1)
    if duplicates:
        raise ValueError(f"duplicate piece ids: {', '.join(duplicates[:5])}")
    staging = out_dir / ".build"
    shutil.rmtree(staging, ignore_errors=True)
    for split in SPLITS:
        (staging / split).mkdir(parents=True)
    info = {name: dict(meta) for name, meta in (sources or {}).items()}
    skipped: dict[str, list] = {name: list(meta.get("skipped", [])) for name, meta in info.items()}
    pieces = []
    for done, c in enumerate(sorted(candidates, key=lambda c: c.id), start=1):
        split = "holdout" if c.holdout else split_for(c.id, val_fraction)
        try:
            pieces.append(_write_piece(c, split, staging))
        except MidiFileError as exc:
            logger.warning("skipped %s: %s", c.id, exc.reason)
            skipped.setdefault(c.source, []).append({"id": c.id, "origin": c.origin, "reason": exc.reason})
        if on_step:
            on_step("write", done, len(candidates))
    manifest = _manifest(pieces, info, skipped, val_fraction)
    holdout = [dict(p, path=p["path"].split("/", 1)[1]) for p in pieces if p["split"] == "holdout"]
    holdout_manifest = {"format": MANIFEST_FORMAT, "split": "holdout", "selection": manifest["holdout"],
                        "summary": _totals(holdout), "pieces": holdout}
    _write_json(staging / MANIFEST, manifest)
    _write_json(staging / "holdout" / MANIFEST, holdout_manifest)
    for name in (*SPLITS, MANIFEST):
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        (staging / name).rename(target)
    staging.rmdir()
    return manifest


def _write_piece(c: Candidate, split: str, staging: Path) -> dict[str, Any]:
    midi, track_names = normalize_midi(load_midi(c.raw_path), c.layout, str(c.raw_path))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    rel = f"{split}/{slug(c.id)}.mid"
    (staging / rel).write_bytes(buffer.getvalue())
    tracks = read_notes(staging / rel)
    notes = [n for track in tracks for n in track]
    has_pedal = any(m.type == "control_change" and m.control == SUSTAIN_CC and m.value >= 64
                    for track in midi.tracks for m in track)
    return {
        "id": c.id, "split": split, "source": c.source, "tags": dict(c.tags),
        "duration_s": round(max((n.end_s for n in notes), default=0.0), 3),
        "n_notes": len(notes), "has_pedal": has_pedal, "two_hands": c.layout == "hands",
        "tracks": track_names, "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
        "path": rel, "origin": c.origin,
    }


def _totals(pieces: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"files": len(pieces), "hours": round(sum(p["duration_s"] for p in pieces) / 3600, 3),
            "notes": sum(p["n_notes"] for p in pieces)}


def _manifest(pieces, info, skipped, val_fraction) -> dict[str, Any]:
    sources = {}
    for name in sorted(set(info) | set(skipped) | {p["source"] for p in pieces}):
        mine = [p for p in pieces if p["source"] == name]
        sources[name] = {**info.get(name, {}), **_totals(mine),
                         "by_split": {s: _totals([p for p in mine if p["split"] == s]) for s in SPLITS},
                         "skipped": sorted(skipped.get(name, []), key=lambda s: (s.get("id", ""), s["origin"]))}
    holdout = next((meta.pop("holdout") for meta in sources.values() if "holdout" in meta), None)
    return {
        "format": MANIFEST_FORMAT,
        "val_fraction": val_fraction,
        "split_rule": "holdout by source rule; else val when sha256(id)[:8] < val_fraction * 2**64",
        "track_layout": "two_hands pieces: track 0 = left hand, track 1 = right hand; "
                        "others: one pitched part per track, drums dropped; tempo map in track 0",
        "holdout": holdout,
        "splits": {s: _totals([p for p in pieces if p["split"] == s]) for s in SPLITS},
        "sources": sources,
        "pieces": pieces,
    }


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def verify_manifest(out_dir: str | Path) -> list[str]:
    """Problems with a built corpus (missing or changed files, a piece in two splits, stray
    files); an empty list when the files are exactly what the manifests say."""
    out_dir = Path(out_dir)
    problems = []
    main = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    holdout = json.loads((out_dir / "holdout" / MANIFEST).read_text(encoding="utf-8"))
    listed = {}
    for base, manifest in ((out_dir, main), (out_dir / "holdout", holdout)):
        for p in manifest["pieces"]:
            path = base / p["path"]
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif sha256_file(path) != p["sha256"]:
                problems.append(f"{path}: sha256 differs from the manifest")
            listed[path.resolve()] = p["id"]
    splits_of = defaultdict(set)
    for p in main["pieces"]:
        splits_of[p["id"]].add(p["split"])
    problems += [f"{i}: in several splits {sorted(s)}" for i, s in splits_of.items() if len(s) > 1]
    held = {p["id"] for p in holdout["pieces"]}
    if held != {p["id"] for p in main["pieces"] if p["split"] == "holdout"}:
        problems.append("holdout manifest and main manifest disagree on the hold-out pieces")
    for split in SPLITS:
        problems += [f"{f}: not in the manifest" for f in sorted((out_dir / split).glob("*.mid"))
                     if f.resolve() not in listed]
    return problems
