"""Prime phrases: the MIDI files a preset names (`[model] prime`) read as the AI's own notes, and
their tokens for the fixed start of the model's context (`engine.duet.context`), where everything
the model writes reads them first: style by example, with no training."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

from engine.events import AI, Note
from engine.midi.midifile import MidiFileError, load_pitched_events
from engine.midi.notes import notes_from_events
from engine.presets.schema import Preset, PresetError, resolve_prime
from engine.tokens.tokenizer import JamTokenizer

PHRASE_GAP_S = 0.5  # a breath between two phrases, and between the last one and the jam


def read_prime(preset: Preset) -> tuple[Note, ...]:
    """The AI's notes of the preset's prime phrases: each phrase from its first onset, one after
    the other with PHRASE_GAP_S between, cut at `model.prime_s` (a note starting later is left
    out, whole). Drums (channel 10) are left out. Raises PresetError naming the preset file, the
    key (`model.prime[i]`) and the file when one is missing, unreadable or has no notes. A file is
    read again only when it changed, so calling this per preset switch costs a `stat` per file."""
    limit_s = preset.model.prime_s
    notes: list[Note] = []
    at_s = 0.0
    for i, path in enumerate(resolve_prime(preset)):
        phrase = _phrase_of(preset, path, f"model.prime[{i}]")  # every file is checked, also past prime_s
        notes += [Note(n.start_s + at_s, n.end_s + at_s, n.pitch, n.velocity, AI) for n in phrase
                  if n.start_s + at_s < limit_s]
        at_s += max(n.end_s for n in phrase) + PHRASE_GAP_S
    return tuple(notes)


def prime_ids(prime: Sequence[Note], tokenizer: JamTokenizer, max_tokens: int) -> list[int]:
    """Tokens of the prime notes, for right after the sequence's conditions: its notes from the
    first one kept, then a time shift past their end and a breath, so that the jam's first note
    comes after them. Whole notes are left out from the start until the tokens fit in `max_tokens`
    (the rest of the context belongs to the jam). Empty for no prime, or none that fits."""
    notes = sorted(prime, key=lambda n: (n.start_s, n.pitch))
    while notes:
        origin_s = notes[0].start_s
        ids, last_tick = tokenizer.encode_notes(notes, origin_s=origin_s)
        if not ids:  # nothing in the tokenizer's range
            return []
        end_tick = round((max(n.end_s for n in notes) + PHRASE_GAP_S - origin_s) / tokenizer.tick_s)
        ids += tokenizer.shift_ids(max(0, end_tick - last_tick))
        if len(ids) <= max_tokens:
            return ids
        notes = notes[max(1, (len(ids) - max_tokens) // 8):]  # a note is 4 tokens and its shifts
    return []


def _phrase_of(preset: Preset, path: Path, key: str) -> tuple[Note, ...]:
    """One phrase's notes, its first onset at 0 (read once per version of the file)."""
    where = preset.source or f"preset {preset.name!r}"
    try:
        stat = os.stat(path)
        return _read_phrase(path, stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        raise PresetError(where, key, f"{path}: {(exc.strerror or str(exc)).lower()}") from None
    except MidiFileError as exc:
        raise PresetError(where, key, str(exc)) from None
    except ValueError as exc:
        raise PresetError(where, key, f"{path}: {exc}") from None


@functools.lru_cache(maxsize=64)
def _read_phrase(path: Path, _mtime_ns: int, _size: int) -> tuple[Note, ...]:
    events = load_pitched_events(path, warn=False)  # drums are left out of a prime phrase silently
    notes = notes_from_events(events, player=AI)
    if not notes:
        raise ValueError("has no notes but drums (channel 10)")
    first_s = notes[0].start_s
    return tuple(Note(n.start_s - first_s, n.end_s - first_s, n.pitch, n.velocity, AI) for n in notes)
