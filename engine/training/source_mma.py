"""The MMA corpus source: seeded jazz chord charts rendered to comping with the installed `mma`."""
from __future__ import annotations

import logging
import random
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.training.corpus import Candidate, OnStep, slug
from engine.training.sources import Fetched, SourceError

logger = logging.getLogger(__name__)

MMA_GROOVES = ("Swing", "SwingWalk", "Swing1", "FastSwing", "EasySwing", "Bebop", "JazzCombo", "ModernJazz",
               "Evansish", "SlowJazz", "MellowJazz", "NiteJazz", "Ballad", "BigBand", "JazzGuitar",
               "JazzWaltz", "ModernJazzWaltz", "FastJazzWaltz", "BossaNova", "JazzRhumba", "Jazz54")
MMA_FORMS = ("ii-V-I", "blues", "rhythm")
DEFAULT_MMA_COUNT = 300
_MMA_LIBS = (Path("/usr/share/mma/lib"), Path("/usr/local/share/mma/lib"))
MMA_KEYS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


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
    lines = [f"// jamtui corpus chart {index}: {form} from {MMA_KEYS[key]}, groove {groove}",
             f"RndSeed {index}", f"Tempo {tempo_bpm}", f"Groove {groove}"]
    for n, bar in enumerate(bars, start=1):
        half = (beats + 1) // 2  # two chords in a bar: the first gets the larger half
        lines.append(f"{n} {bar[0]}" if len(bar) == 1 else
                     " ".join([str(n), bar[0], *["/"] * (half - 1), bar[1], *["/"] * (beats - half - 1)]))
    tags = {"genre": "jazz comping", "groove": groove, "form": form, "key": MMA_KEYS[key],
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
    return MMA_KEYS[(key + interval) % 12] + quality


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
