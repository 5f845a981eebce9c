"""A performer's named corpus of their own playing, in the user data dir: `corpora/NAME/manifest.json`
and the kept files `files/<sha256[:16]>.mid`, split into train and val by file, once, when added.

What is kept of each source file is `engine.style.corpus_files`; the stored files read back
through `engine.training.midi_files.read_notes`, as pre-training reads its corpus.
"""
from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import re
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.audio.decode import AUDIO_SUFFIXES, is_audio_path
from engine.audio.transcribe import Transcriber
from engine.midi.midifile import MidiFileError, atomic_write
from engine.style.corpus_files import REST_S, keep_file, keep_recording
from engine.training.corpus import hash_rank
from engine.user_dirs import corpora_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; two adds at once are then the user's to avoid
    fcntl = None

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FILES_DIR = "files"
MANIFEST_FORMAT = 1
VAL_FRACTION = 0.15
MIDI_SUFFIXES = frozenset({".mid", ".midi"})
SPLIT_RULE = (f"decided once when a file is added: the new files, in the order of sha256(file sha256), go to val "
              f"while val stays within {VAL_FRACTION} of all the music (by duration), the rest to train; "
              "when the corpus has two or more files and no val, the shortest new train file goes to val")
TEMPO_METHOD = "pulse estimate: the median over files of the beat most onset pairs fit"
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
ADDED_SUFFIXES = MIDI_SUFFIXES | AUDIO_SUFFIXES  # sound files are transcribed on the way in
_ENTRY_KEYS = ("sha256", "source", "file", "kind", "duration_s", "playing_s", "n_notes", "pitch_range", "split",
               "added", "warnings")

OnIssue = Callable[[Path, str], None]
"""`on_skip(path, reason)` / `on_warning(path, message)`: one line, not naming the file."""


class Split(enum.StrEnum):
    TRAIN = "train"
    VAL = "val"


class CorpusError(Exception):
    """A corpus or one of its files cannot be used as asked; `str()` is one line naming it."""


@dataclass(frozen=True)
class AddResult:
    """What `add_files` did: the entries it added, the files it skipped and the warnings, each
    `(path, one line)`. `corpus` is None when nothing was added to a corpus that did not exist."""

    corpus: Corpus | None
    added: tuple[dict[str, Any], ...]
    skipped: tuple[tuple[Path, str], ...]
    warnings: tuple[tuple[Path, str], ...]


class Corpus:
    """A corpus as its manifest lists it (`open_corpus`); a snapshot, not updated by later adds."""

    def __init__(self, name: str, path: Path, manifest: dict[str, Any]) -> None:
        self.name = name
        self.path = path
        self._manifest = manifest

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, {len(self._manifest['files'])} files)"

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The manifest's entries, one per file, in the order added (copies)."""
        return json.loads(json.dumps(self._manifest["files"]))

    def files(self, split: str | None = None) -> list[Path]:
        """The stored MIDI files of `split` ("train", "val"; None: all), sorted."""
        wanted = None if split is None else Split(split)
        return sorted(self.path / FILES_DIR / e["file"] for e in self._manifest["files"]
                      if wanted is None or e["split"] == wanted)

    def summary(self) -> dict[str, Any]:
        """The figures `jamtui corpus show` prints: totals, pitch range, tempo and density, per
        split counts, and the entries."""
        entries = self._manifest["files"]
        tempi = [e["tempo_bpm"] for e in entries if e.get("tempo_bpm")]
        playing = sum(e["playing_s"] for e in entries)
        return {
            "name": self.name, "path": str(self.path), **_totals(entries),
            "pitch_range": [min(e["pitch_range"][0] for e in entries),
                            max(e["pitch_range"][1] for e in entries)] if entries else None,
            "tempo_bpm": round(statistics.median(tempi), 1) if tempi else None,
            "tempo_method": TEMPO_METHOD,
            "density_nps": round(sum(e["n_notes"] for e in entries) / playing, 2) if playing > 0 else None,
            "density_method": f"while playing: silences of {REST_S:g} s or more left out",
            "splits": {split.value: _totals([e for e in entries if e["split"] == split]) for split in Split},
            "files": self.entries,
        }


def check_name(name: str) -> str:
    """`name` when it can name a corpus (letters, digits, `-`, `_`, `.`; not starting with `.`)."""
    if not _NAME.fullmatch(name):
        raise CorpusError(f"invalid corpus name {name!r}: use letters, digits, '-', '_' and '.', "
                          "not starting with '.' (at most 100 characters)")
    return name


def open_corpus(name: str) -> Corpus:
    """The corpus `name`; CorpusError when there is none, or its manifest or a file it lists is broken."""
    path = corpora_dir() / check_name(name)
    manifest = _read_manifest(name)
    for entry in manifest["files"]:
        if not (path / FILES_DIR / entry["file"]).is_file():
            raise CorpusError(f"corpus {name} is broken: {FILES_DIR}/{entry['file']} (from {entry['source']}) "
                              f"is missing; `jamtui corpus remove {name} {entry['sha256'][:12]}` drops it")
    return Corpus(name, path, manifest)


def list_corpora() -> list[str]:
    """The names of the corpora there are, sorted."""
    root = corpora_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _NAME.fullmatch(p.name) and (p / MANIFEST).is_file())


def add_files(name: str, paths: Iterable[str | os.PathLike[str]], *, on_skip: OnIssue | None = None,
              on_warning: OnIssue | None = None,
              on_progress: Callable[[float, float], None] | None = None) -> AddResult:
    """Add MIDI files, sound files (transcribed, see `engine.audio`) and folders (searched
    recursively for both) to the corpus `name`, made if new. A file that cannot be used is skipped
    (`on_skip`) and the rest go on; `on_progress(files read, files found)` is called as the files are
    read, in fractions of a file while a recording is transcribed.

    The kept files are written before the manifest, which is replaced atomically: an add that
    fails or is interrupted leaves the corpus as it was. Nothing is written when nothing is added."""
    check_name(name)
    skipped: list[tuple[Path, str]] = []
    warned: list[tuple[Path, str]] = []

    def skip(path: Path, reason: str) -> None:
        skipped.append((path, reason))
        if on_skip is not None:
            on_skip(path, reason)

    def warn(path: Path, message: str) -> None:
        warned.append((path, message))
        if on_warning is not None:
            on_warning(path, message)

    folder = corpora_dir() / name
    with _locked(name):
        manifest = _read_manifest(name) if (folder / MANIFEST).exists() else _new_manifest(name)
        by_hash = {e["sha256"]: e for e in manifest["files"]}
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".adding-", dir=folder))
        new: list[dict[str, Any]] = []
        moved: list[Path] = []
        transcriber = Transcriber()  # the model loads at the first sound file, once for all
        try:
            paths = list(paths)
            # Counted in a silent first walk, so the skips still come in the order of the paths given.
            total = sum(1 for _ in _midi_files(paths, lambda _path, _reason: None)) if on_progress else 0
            for done, path in enumerate(_midi_files(paths, skip)):
                if on_progress is not None:
                    on_progress(done, total)

                def within(seconds: float, of_s: float, done: int = done) -> None:
                    if on_progress is not None:
                        on_progress(done + (seconds / of_s if of_s > 0 else 0.0), total)

                try:
                    if is_audio_path(path):
                        kept = keep_recording(path, scratch, transcriber, on_progress=within)
                    else:
                        kept = keep_file(path, scratch)
                except MidiFileError as exc:
                    skip(path, exc.reason)
                    continue
                if kept.sha256 in by_hash:
                    earlier = by_hash[kept.sha256]
                    where = "given earlier" if earlier in new else f"already in corpus {name}"
                    skip(path, f"duplicate of {earlier['source']} ({where}; sha256 {kept.sha256[:12]})")
                    continue
                for message in kept.warnings:
                    warn(path, message)
                entry = _entry(path, kept)
                (scratch / entry["file"]).write_bytes(kept.data)
                new.append(entry)
                by_hash[kept.sha256] = entry
            if on_progress is not None and total:
                on_progress(total, total)
            if new:
                _assign_splits(manifest["files"], new)
                (folder / FILES_DIR).mkdir(exist_ok=True)
                for entry in new:
                    target = folder / FILES_DIR / entry["file"]
                    os.replace(scratch / entry["file"], target)
                    moved.append(target)
                manifest = {**manifest, "updated": _now(), "files": manifest["files"] + new}
                _write_manifest(folder, manifest)
        except BaseException:
            for target in moved:  # new names only: no file of the old manifest is touched
                target.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if created and not (folder / MANIFEST).exists():
                shutil.rmtree(folder, ignore_errors=True)
    corpus = Corpus(name, folder, manifest) if (folder / MANIFEST).exists() else None
    if new:
        logger.info("corpus %s: added %d files, skipped %d", name, len(new), len(skipped))
    return AddResult(corpus, tuple(new), tuple(skipped), tuple(warned))


def remove_corpus(name: str) -> int:
    """Delete the corpus `name` and its files; returns how many files it had."""
    folder = corpora_dir() / check_name(name)
    with _locked(name):
        if not folder.is_dir():
            raise _unknown(name)
        try:
            count = len(_read_manifest(name)["files"])
        except CorpusError:  # a broken corpus can still be removed
            count = 0
        # Out of sight first: a removal that fails halfway leaves no corpus that looks whole.
        doomed = folder.with_name(f".{name}.removing-{os.getpid()}")
        os.replace(folder, doomed)
        shutil.rmtree(doomed)
    return count


def remove_file(name: str, which: str) -> dict[str, Any]:
    """Drop one file from the corpus `name`, named by its source path, stored file name or a
    hash prefix (4 hex digits at least); returns its entry. The other files keep their split."""
    check_name(name)
    folder = corpora_dir() / name
    with _locked(name):
        manifest = _read_manifest(name)
        matches = [e for e in manifest["files"] if _matches(e, which)]
        if not matches:
            raise CorpusError(f"corpus {name} has no file {which!r} (give a source path, a stored file name or a "
                              f"hash prefix; `jamtui corpus show {name}` lists them)")
        if len(matches) > 1:
            raise CorpusError(f"corpus {name}: {which!r} matches {len(matches)} files; give more of the hash")
        entry = matches[0]
        _write_manifest(folder, {**manifest, "updated": _now(),
                                 "files": [e for e in manifest["files"] if e is not entry]})
        # After the manifest: a crash in between leaves a stray file, never a listed one missing.
        (folder / FILES_DIR / entry["file"]).unlink(missing_ok=True)
    return entry


# --- manifest ------------------------------------------------------------------------------

def _new_manifest(name: str) -> dict[str, Any]:
    now = _now()
    return {"format": MANIFEST_FORMAT, "name": name, "created": now, "updated": now, "split_rule": SPLIT_RULE,
            "files": []}


def _read_manifest(name: str) -> dict[str, Any]:
    path = corpora_dir() / name / MANIFEST
    if not path.parent.is_dir():
        raise _unknown(name)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorpusError(f"corpus {name} is broken: {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise CorpusError(f"corpus {name} is broken: cannot read {path} ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise CorpusError(f"corpus {name} is broken: {path} is not a format {MANIFEST_FORMAT} manifest")
    files = manifest.get("files")
    if not isinstance(files, list):
        raise CorpusError(f"corpus {name} is broken: {path} has no list of files")
    for i, entry in enumerate(files, start=1):
        missing = [key for key in _ENTRY_KEYS if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise CorpusError(f"corpus {name} is broken: file {i} in {path} lacks {', '.join(missing)}")
        if entry["split"] not in set(Split) or Path(entry["file"]).name != entry["file"]:
            raise CorpusError(f"corpus {name} is broken: file {i} in {path} has a bad split or file name")
    return manifest


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
    atomic_write(folder / MANIFEST, lambda f: f.write(text.encode("utf-8")))


def _entry(path: Path, kept) -> dict[str, Any]:
    return {"sha256": kept.sha256, "source": str(path), "file": f"{kept.sha256[:16]}.mid", "kind": kept.kind.value,
            "duration_s": round(kept.duration_s, 3), "playing_s": round(kept.playing_s, 3),
            "n_notes": kept.n_notes, "pitch_range": list(kept.pitch_range),
            "tempo_bpm": None if kept.tempo_bpm is None else round(kept.tempo_bpm, 1),
            "split": None, "added": _now(), "warnings": list(kept.warnings),
            **({"transcribed_with": kept.transcribed_with} if kept.transcribed_with else {})}


def _assign_splits(existing: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    """Each new file's split (see SPLIT_RULE); files already in the corpus never move.

    Validation is a share of the music, not of the files: a small corpus of unequal files
    loses no more than VAL_FRACTION of its playing to early stopping, whichever file the
    hash would have picked."""
    everything = existing + new
    budget_s = VAL_FRACTION * sum(e["duration_s"] for e in everything)
    val_s = sum(e["duration_s"] for e in existing if e["split"] == Split.VAL)
    for entry in sorted(new, key=lambda e: hash_rank(e["sha256"])):
        fits = val_s + entry["duration_s"] <= budget_s
        entry["split"] = (Split.VAL if fits else Split.TRAIN).value
        val_s += entry["duration_s"] if fits else 0.0
    if not any(e["split"] == Split.TRAIN for e in everything):  # only files of no length: one trains
        min(new, key=lambda e: e["sha256"])["split"] = Split.TRAIN.value
    if len(everything) >= 2 and not any(e["split"] == Split.VAL for e in everything):
        candidates = [e for e in new if e["split"] == Split.TRAIN]
        if len(candidates) > 1 or any(e["split"] == Split.TRAIN for e in existing):
            min(candidates, key=lambda e: (e["duration_s"], e["sha256"]))["split"] = Split.VAL.value


def _totals(entries: list[dict[str, Any]]) -> dict[str, Any]:
    duration_s = sum(e["duration_s"] for e in entries)
    return {"n_files": len(entries), "hours": round(duration_s / 3600, 4), "duration_s": round(duration_s, 3),
            "n_notes": sum(e["n_notes"] for e in entries)}


# --- helpers -------------------------------------------------------------------------------

def _midi_files(paths: Iterable[str | os.PathLike[str]], skip: OnIssue) -> Iterator[Path]:
    """Each file given, and the MIDI and sound files under each folder given (sorted), once each."""
    seen: set[Path] = set()
    for given in paths:
        path = Path(os.path.abspath(given))
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in ADDED_SUFFIXES and p.is_file())
            if not found:
                skip(path, "folder holds no .mid or .midi files")  # nor sound files
        elif path.exists():
            found = [path]
        else:
            skip(path, "no such file or folder")
            found = []
        for file in found:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                yield file


def _matches(entry: dict[str, Any], which: str) -> bool:
    if which in (entry["source"], entry["file"], Path(entry["file"]).stem):
        return True
    if os.path.abspath(which) == entry["source"]:
        return True
    return len(which) >= 4 and re.fullmatch(r"[0-9a-fA-F]+", which) is not None and \
        entry["sha256"].startswith(which.lower())


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One add or remove at a time per corpus, across processes (an flock beside its folder)."""
    root = corpora_dir()
    root.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(root / f".{name}.lock", "ab") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CorpusError(f"corpus {name} is busy: another add or remove is running") from None
        yield


def _unknown(name: str) -> CorpusError:
    return CorpusError(f"no corpus named {name} (`jamtui corpus list` shows yours)")


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
