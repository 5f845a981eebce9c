"""The music21 corpus source: a fixed subset of music21's bundled corpus, rendered to MIDI
in child processes (this module is also their entry point) with music21 installed into the cache.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from engine.training.corpus import Candidate, OnStep, slug
from engine.training.sources import HOLDOUT_COMPOSER, Fetched, SourceError, pip_download

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]

MUSIC21 = "music21==10.5.1"
MUSIC21_WHEEL = "music21-10.5.1-py3-none-any.whl"
MUSIC21_SHA256 = "dc3309498c4c95cebdf8d4f20c868deb6b63bce1d929cad4f51a7ccc982987b1"
# What music21 imports at start-up (matplotlib and scipy are optional and not needed to write MIDI).
MUSIC21_DEPS = ("chardet==7.7.0", "joblib==1.6.0", "jsonpickle==4.1.4", "more-itertools==11.2.1",
                "webcolors==25.10.0", "requests==2.34.2", "urllib3==2.8.0", "certifi==2026.10.19.post1",
                "charset-normalizer==3.5.3", "idna==3.20")
DEFAULT_MUSIC21_LIMIT = 300
OPUS_MAX_SCORES = 5
WORK_TIMEOUT_S = 300.0  # a hang guard only: the slowest kept work renders in about a minute
# Six Beethoven quartets come as one 6-11 MB MusicXML file each and take minutes (up to 8)
# to render; every other work is under 5.5 MB. Left out by size so the subset is machine-independent.
MAX_MUSICXML_BYTES = 6_000_000
_CHUNK = 12  # works per render process: amortizes importing music21, bounds what a crash costs
_RENDER_REVISION = 2  # bump when the worker changes what it writes, to re-render the cache
_M21_SKIP_DIRS = {"demos", "theoryExercises"}  # test files and exercises, not repertoire
_M21_EXTENSIONS = (".mxl", ".musicxml", ".xml", ".krn", ".abc")  # preference order; .rntxt is analysis
_M21_GENRES = {
    "bach": "baroque chorale", "handel": "baroque", "corelli": "baroque", "cpebach": "baroque",
    "beethoven": "string quartet", "haydn": "string quartet", "mozart": "string quartet",
    "essenFolksong": "folk", "ryansMammoth": "folk fiddle tune", "oneills1850": "folk fiddle tune",
    "airdsAirs": "folk", "miscFolk": "folk", "nottingham-dataset": "folk",
    "palestrina": "renaissance vocal", "josquin": "renaissance vocal", "monteverdi": "renaissance vocal",
    "lusitano": "renaissance vocal", "trecento": "medieval vocal", "ciconia": "medieval vocal", "luca": "medieval vocal",
    "joplin": "ragtime", "leadSheet": "popular song", "liliuokalani": "popular song", "johnson_j_r": "popular song",
    "schoenberg": "20th-century", "webern": "20th-century", "verdi": "opera", "weber": "romantic",
    "schumann_robert": "romantic", "schumann_clara": "romantic", "schubert": "romantic", "beach": "romantic",
}
# Collections named for what they hold rather than who wrote it: no composer from the folder.
_M21_ANTHOLOGIES = {"essenFolksong", "ryansMammoth", "oneills1850", "airdsAirs", "miscFolk",
                    "nottingham-dataset", "trecento", "leadSheet"}


def music21_site(cache: Path) -> Path:
    """A folder holding music21 and its start-up dependencies, for the render subprocesses
    only: the project never imports music21 itself."""
    site = cache / "music21-10.5.1"
    if (site / ".complete").is_file():
        return site
    wheel = pip_download(MUSIC21, MUSIC21_WHEEL, MUSIC21_SHA256, cache)
    shutil.rmtree(site, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel), *MUSIC21_DEPS]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SourceError(f"installing music21 into {site} failed: {result.stderr.strip()[-500:]}")
    (site / ".complete").write_text("\n".join((MUSIC21, *MUSIC21_DEPS)) + "\n")
    return site


def music21_works(corpus_root: Path) -> list[str]:
    """Every corpus work as a path relative to `corpus_root`, sorted; one file per work
    (a movement in .mxl and .krn is kept once, in the first format of _M21_EXTENSIONS;
    a superseded `*_old` encoding and MusicXML over MAX_MUSICXML_BYTES not at all)."""
    best: dict[str, str] = {}
    for path in corpus_root.rglob("*"):
        if path.suffix not in _M21_EXTENSIONS or path.stem.endswith("_old") or not path.is_file():
            continue
        if _musicxml_bytes(path) > MAX_MUSICXML_BYTES:
            continue
        rel = path.relative_to(corpus_root).as_posix()
        stem = rel[: -len(path.suffix)]
        if stem not in best or _M21_EXTENSIONS.index(path.suffix) < _M21_EXTENSIONS.index(Path(best[stem]).suffix):
            best[stem] = rel
    return sorted(best.values())


def _musicxml_bytes(path: Path) -> int:
    if path.suffix == ".mxl":  # compressed: what music21 has to parse is the unzipped size
        try:
            with zipfile.ZipFile(path) as z:
                return sum(info.file_size for info in z.infolist())
        except zipfile.BadZipFile:
            pass  # the render will say what is wrong with it
    return path.stat().st_size


def select_works(works: list[str], limit: int, exclude_dirs: set[str] | None = None) -> list[str]:
    """The fixed subset to render: `limit` works (0 = all) shared equally between the
    collections (top folders; a small one is taken whole), evenly spaced within each
    collection's sorted list. Skips demos, exercises and the hold-out composer's folder."""
    skip = _M21_SKIP_DIRS | (exclude_dirs or set())
    groups: dict[str, list[str]] = {}
    for work in sorted(works):
        top = work.split("/", 1)[0]
        if top not in skip:
            groups.setdefault(top, []).append(work)
    quota = {name: len(paths) for name, paths in groups.items()}
    if 0 < limit < sum(quota.values()):
        quota = dict.fromkeys(groups, 0)
        left = limit
        while left > 0 and any(quota[n] < len(groups[n]) for n in groups):
            for name in sorted(groups):  # one more for each collection that still has works, in name order
                if left > 0 and quota[name] < len(groups[name]):
                    quota[name] += 1
                    left -= 1
    chosen = []
    for name, paths in sorted(groups.items()):
        k = quota[name]
        chosen += [paths[i * len(paths) // k] for i in range(k)] if k else []
    return sorted(chosen)


def fetch_music21(cache: Path, limit: int = DEFAULT_MUSIC21_LIMIT, *, jobs: int = 2,
                  on_step: OnStep | None = None, work_timeout_s: float = WORK_TIMEOUT_S) -> Fetched:
    """The chosen works rendered to MIDI (cached per work, failures too), as score data."""
    site = music21_site(cache)
    corpus_root = site / "music21" / "corpus"
    works = select_works(music21_works(corpus_root), limit, {HOLDOUT_COMPOSER.lower()})
    render_dir = cache / f"music21-10.5.1-midi-r{_RENDER_REVISION}"
    render_dir.mkdir(parents=True, exist_ok=True)
    todo = [w for w in works if not (render_dir / f"{slug(w)}.json").is_file()]
    done = len(works) - len(todo)
    if on_step:
        on_step("music21", done, len(works))
    chunks = [todo[i:i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}

    lock = threading.Lock()

    def one_done() -> None:
        nonlocal done
        with lock:
            done += 1
            if on_step:
                on_step("music21", done, len(works))

    def run(chunk: list[str]) -> None:
        while chunk:
            chunk = chunk[_render_chunk(chunk, corpus_root, render_dir, env, work_timeout_s, one_done):]

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        list(pool.map(run, chunks))
    candidates, skipped = [], []
    for work in works:
        record = json.loads((render_dir / f"{slug(work)}.json").read_text())
        if not record["ok"]:
            logger.warning("music21 %s skipped: %s", work, record["reason"])
            skipped.append({"id": _m21_id(work), "origin": f"music21/corpus/{work}", "reason": record["reason"]})
            continue
        skipped += [{"id": f"{_m21_id(work)}#{f['index']}", "origin": f"music21/corpus/{work}#{f['index']}",
                     "reason": f["reason"]} for f in record["failures"]]
        top = work.split("/", 1)[0]
        for score in record["scores"]:
            suffix = f"#{score['index']}" if record["opus"] else ""
            tags = {"genre": _M21_GENRES.get(top, "classical"), "collection": top, "performance": "score",
                    "title": score["title"] or Path(work).stem}
            composer = score["composer"] or (None if top in _M21_ANTHOLOGIES else top)
            tags |= {"composer": composer} if composer else {}
            tags |= {"repeats": "dropped"} if score.get("repeats_dropped") else {}
            candidates.append(Candidate(_m21_id(work) + suffix, "score", f"music21/corpus/{work}{suffix}",
                                        render_dir / score["file"], tags))
    info = {"package": MUSIC21, "file": MUSIC21_WHEEL, "sha256": MUSIC21_SHA256, "deps": list(MUSIC21_DEPS),
            "licence": "BSD-3-Clause (music21 code); the encoded scores carry their own terms, "
                       "see music21/corpus/license.txt in the wheel",
            "limit": limit, "works": len(works), "opus_max_scores": OPUS_MAX_SCORES}
    return Fetched(candidates, info, skipped)


def _m21_id(work: str) -> str:
    return "m21/" + work.rsplit(".", 1)[0]


def _render_chunk(chunk: list[str], corpus_root: Path, render_dir: Path, env: dict, timeout_s: float,
                  one_done: Callable[[], None]) -> int:
    """Render works in one subprocess until it ends or a work takes longer than `timeout_s`
    (that work is recorded as failed). Returns how many works of `chunk` now have a record."""
    cmd = [sys.executable, "-m", "engine.training.source_music21", "render-music21", str(corpus_root), str(render_dir), *chunk]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put("")], daemon=True)
    reader.start()
    finished, wait_s = 0, timeout_s + 30  # the first work also pays for importing music21
    try:
        while finished < len(chunk):
            try:
                line = lines.get(timeout=wait_s)
            except queue.Empty:
                _write_record(render_dir, chunk[finished], {"ok": False, "reason": f"timed out after {timeout_s:.0f} s"})
                one_done()
                return finished + 1
            if not line:
                break
            if line.rstrip("\n") != f"rendered\t{chunk[finished]}":
                continue  # anything else a library printed
            finished, wait_s = finished + 1, timeout_s
            one_done()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(timeout=5)
    if finished < len(chunk):  # the worker died: blame the work it was on
        _write_record(render_dir, chunk[finished], {"ok": False, "reason": f"render process exited {proc.returncode}"})
        one_done()
        finished += 1
    return finished


def _write_record(render_dir: Path, work: str, record: dict) -> None:
    path = render_dir / f"{slug(work)}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"work": work, **record}))
    tmp.replace(path)


def _render_worker(corpus_root: str, render_dir: str, works: list[str]) -> None:
    """Child process: parse each work with music21's corpus and write MIDI; one line per work."""
    import warnings

    warnings.simplefilter("ignore")
    import copy

    from music21 import bar, corpus, key, meter, repeat, spanner, stream

    def write(score, path: str) -> bool:
        """Write MIDI, repairing what music21's MIDI export trips on; True if repeats were dropped."""
        try:
            score.write("midi", fp=path)
            return False
        except Exception:
            pass
        seen = set()  # ABC tunes can share one TimeSignature object between measures
        for site in score.recurse(streamsOnly=True, includeSelf=True):
            for el in list(site.getElementsByClass((meter.TimeSignature, key.KeySignature))):
                if id(el) in seen:
                    site.replace(el, copy.deepcopy(el))
                seen.add(id(el))
        try:
            score.write("midi", fp=path)
            return False
        except Exception:  # music21 expands repeats for MIDI; badly formed ones stop it
            for m in score.recurse().getElementsByClass(stream.Measure):
                m.leftBarline = None if isinstance(m.leftBarline, bar.Repeat) else m.leftBarline
                m.rightBarline = None if isinstance(m.rightBarline, bar.Repeat) else m.rightBarline
            for el in list(score.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket))):
                el.activeSite.remove(el)
            score.write("midi", fp=path)
            return True

    def pick(n: int) -> list[int]:  # evenly spaced, at most OPUS_MAX_SCORES
        return [i * n // OPUS_MAX_SCORES for i in range(OPUS_MAX_SCORES)] if n > OPUS_MAX_SCORES else list(range(n))

    for work in works:
        path = os.path.join(corpus_root, work)
        try:
            # An ABC file can hold hundreds of tunes: parse only the chosen ones, by X: number.
            tunes = re.split(r"^(?=X:)", Path(path).read_text(errors="replace"), flags=re.M)[1:] \
                if work.endswith(".abc") else []
            numbers = [re.match(r"X:\s*(\d*)", tune).group(1) for tune in tunes]
            titles = {m.group(1).strip() if (m := re.search(r"^T:(.*)$", tune, re.M)) else "" for tune in tunes}
            if len(tunes) > 1 and len(titles) == 1 and "" not in titles:  # a tune per voice (Josquin)
                opus, merged = False, corpus.parse(path, forceSource=True).mergeScores()
                getters = {0: lambda: merged}
            elif len(tunes) > 1 and all(numbers) and len(set(numbers)) == len(numbers):
                opus = True
                getters = {i: lambda i=i: corpus.parse(path, number=int(numbers[i]), forceSource=True) for i in pick(len(numbers))}
            else:
                parsed = corpus.parse(path, forceSource=True)
                opus = isinstance(parsed, stream.Opus)
                every = list(parsed.scores) if opus else [parsed]
                getters = {i: lambda i=i: every[i] for i in pick(len(every))}
            written, failures = [], []
            for i, get in getters.items():
                name = f"{slug(work)}.{i}.mid" if opus else f"{slug(work)}.mid"
                try:
                    score = get()
                    score = score.scores[0] if isinstance(score, stream.Opus) else score
                    dropped = write(score, os.path.join(render_dir, name))
                except Exception as exc:  # one bad tune in an opus does not lose the others
                    failures.append({"index": i, "reason": f"{type(exc).__name__}: {str(exc)[:300]}"})
                    continue
                md = score.metadata
                written.append({"index": i, "file": name, "composer": md.composer if md else None,
                                "title": (md.title or md.movementName) if md else None, "repeats_dropped": dropped})
            if not written:
                raise RuntimeError("; ".join(f"#{f['index']}: {f['reason']}" for f in failures) or "no scores")
            record = {"ok": True, "opus": opus, "scores": written, "failures": failures}
        except Exception as exc:
            record = {"ok": False, "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
        _write_record(Path(render_dir), work, record)
        print(f"rendered\t{work}", flush=True)


if __name__ == "__main__" and len(sys.argv) > 3 and sys.argv[1] == "render-music21":
    _render_worker(sys.argv[2], sys.argv[3], sys.argv[4:])
