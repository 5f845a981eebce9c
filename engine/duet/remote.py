"""`SessionRemote`: what a face reaches in a running session beyond its basic commands (mode,
preset, model, panic): hand the turn over now, and read the AI's part as written, the notes
scheduled ahead of the clock included."""
from __future__ import annotations

from engine.duet.ahead import Generation
from engine.duet.control import Commands
from engine.events import Note


class SessionRemote:
    """Safe from any thread: `hand_over` posts a command the control thread takes at its next
    tick; `ai_notes` copies the AI's part, which only the control thread changes (a list copy is
    one step for the interpreter, so it never sees a list half changed)."""

    def __init__(self, commands: Commands, generation: Generation) -> None:
        self._commands, self._generation = commands, generation

    def hand_over(self) -> None:
        """Call-and-response: the AI answers the phrase now, as the hand-over key would have it."""
        self._commands.hand_over()

    def ai_notes(self) -> list[Note]:
        """The AI's notes scheduled lately (cancelled ones removed), those ahead of now included."""
        return list(self._generation.notes)
