"""Notes from recordings: sustain pedal folded into note ends, symusic scores read as notes,
and which player plays each track of a training piece."""
from __future__ import annotations

import bisect
import collections
import random
from typing import Any, Iterable, Sequence

from engine.events import AI, PERFORMER, Note

PLAYERS = (PERFORMER, AI)


def fold_sustain(notes: Iterable[Note], pedals: Iterable[tuple[float, float]]) -> list[Note]:
    """Fold the sustain pedal into note ends: a key released while the pedal is down sounds
    until the pedal comes up, but never past the next onset of the same pitch (any player),
    which also resolves overlapping notes of one pitch. `pedals` are (down_s, up_s)."""
    notes = list(notes)
    downs: list[float] = []  # merged presses
    ups: list[float] = []
    for down, up in sorted(pedals):
        if downs and down <= ups[-1]:
            ups[-1] = max(ups[-1], up)
        elif up > down:
            downs.append(down)
            ups.append(up)
    onsets: dict[int, list[float]] = collections.defaultdict(list)
    for n in sorted(notes, key=lambda n: n.start_s):
        onsets[n.pitch].append(n.start_s)
    folded = []
    for n in notes:
        end = n.end_s
        i = bisect.bisect_right(downs, end) - 1
        if i >= 0 and end < ups[i]:
            end = ups[i]
        later = onsets[n.pitch]
        j = bisect.bisect_right(later, n.start_s)
        if j < len(later):
            end = min(end, later[j])
        folded.append(Note(n.start_s, max(end, n.start_s), n.pitch, n.velocity, n.player))
    return folded


def notes_from_score(score: Any, players: Sequence[int] | None = None, *, fold_pedal: bool = True) -> list[Note]:
    """Notes of a symusic Score in seconds, track i played by `players[i]` (default: all
    PERFORMER). Drum tracks are skipped. One piano has one pedal: the sustain pedals of
    all tracks are merged before folding."""
    score = score.to("second")
    players = list(players) if players is not None else [PERFORMER] * len(score.tracks)
    if len(players) != len(score.tracks):
        raise ValueError(f"{len(players)} players for {len(score.tracks)} tracks")
    notes, pedals = [], []
    for track, player in zip(score.tracks, players):
        pedals += [(p.time, p.time + p.duration) for p in track.pedals]
        if not track.is_drum:
            notes += [Note(n.time, n.time + n.duration, n.pitch, n.velocity, player) for n in track.notes]
    if fold_pedal:
        notes = fold_sustain(notes, pedals)
    notes.sort(key=lambda n: (n.start_s, n.pitch, n.player))
    return notes


_LEFT_HAND = ("links", "left", "lh", "l.h.", "bass")
_RIGHT_HAND = ("rechts", "right", "rh", "r.h.", "treble", "melody")


def track_players(
    names: Sequence[str], mode: str = "hands", *, rng: random.Random | None = None, swap: bool = False
) -> list[int]:
    """Which player plays each track of a training piece.

    "hands": a left-hand track (HANNDs "Links") is the PERFORMER, a right-hand one
    ("Rechts") the AI; unrecognised names go to the PERFORMER. "random": a random split in
    which both players get at least one track when there are two or more. `swap`
    exchanges the players afterwards, so a model also learns the other role.
    """
    if mode == "hands":
        players = [AI if _hand(name, _RIGHT_HAND) and not _hand(name, _LEFT_HAND) else PERFORMER for name in names]
    elif mode == "random":
        rng = rng or random.Random()
        players = [rng.choice(PLAYERS) for _ in names]
        if len(names) >= 2 and len(set(players)) == 1:
            players[rng.randrange(len(names))] = 1 - players[0]
    else:
        raise ValueError(f"unknown mode {mode!r}; expected 'hands' or 'random'")
    return [1 - p for p in players] if swap else players


def _hand(name: str, words: Sequence[str]) -> bool:
    """Short marks ("lh") must be whole words; longer words may sit inside a name."""
    lowered = name.lower()
    parts = lowered.replace("-", " ").replace("_", " ").split()
    return any(w in parts if len(w) <= 4 else w in lowered for w in words)
