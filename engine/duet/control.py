"""The commands a performer sends a running session (mode, preset, model, panic, hand over): posted
from any thread, taken in order by the session's control thread."""
from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Any, Iterator

from engine.presets.schema import MODES, Mode, Preset


@dataclass(frozen=True)
class SetMode:
    mode: Mode


@dataclass(frozen=True)
class SetPreset:
    """Takes effect once the phrase being played is committed (the AI's turn ends)."""

    preset: Preset


@dataclass(frozen=True)
class SetModel:
    """Play `model` (loaded already, with the same tokenizer) from the next chunk on."""

    model: Any
    label: str  # the model in words, for the events


@dataclass(frozen=True)
class Panic:
    """Drop what generation has scheduled; the output itself is silenced by the sender at once."""


@dataclass(frozen=True)
class HandOver:
    """Call-and-response: the AI answers the phrase played so far now, as the hand-over key asks."""


Command = SetMode | SetPreset | SetModel | Panic | HandOver


class Commands:
    """A thread-safe queue of `Command`s. `set_mode`, `set_preset`, `set_model`, `panic` and
    `hand_over` from any thread; `drain` on the control thread only."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Command] = queue.Queue()

    def set_mode(self, mode: str) -> None:
        """Raises ValueError, in the caller's thread, for a mode that is not one of `Mode`."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self._queue.put(SetMode(Mode(mode)))

    def set_preset(self, preset: Preset) -> None:
        self._queue.put(SetPreset(preset))

    def set_model(self, model, label: str) -> None:
        self._queue.put(SetModel(model, label))

    def panic(self) -> None:
        self._queue.put(Panic())

    def hand_over(self) -> None:
        self._queue.put(HandOver())

    def drain(self) -> Iterator[Command]:
        """The commands posted so far, oldest first, including any posted while it runs."""
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return
