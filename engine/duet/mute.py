"""`MutableOutput`: the AI's output port with a mute. Muted, the AI's new notes do not sound (the
jam, its model and its clock go on); notes already sounding end at their own offs, so none hangs."""
from __future__ import annotations

import threading

_NOTE_OFF, _NOTE_ON = 0x80, 0x90


class MutableOutput:
    """Wraps an output port. While muted, a note-on is swallowed, and so is the note-off that
    ends it; every other message (note-offs of notes that sounded, pedal, all-notes-off) goes
    through. `set_muted` and `muted` are safe from any thread; `send` and `heard_last` belong to
    the one thread that sends (the scheduler's), which reads `heard_last` right after a send to
    learn whether that message reached the port."""

    def __init__(self, port) -> None:
        self.port = port
        self.name = getattr(port, "name", "")
        self._muted = threading.Event()
        self._swallowed: set[tuple[int, int]] = set()  # (channel, pitch) of note-ons kept back
        self.heard_last = True

    @property
    def muted(self) -> bool:
        return self._muted.is_set()

    def set_muted(self, on: bool) -> None:
        if on:
            self._muted.set()
        else:
            self._muted.clear()

    def send(self, message: bytes) -> None:
        kind = message[0] & 0xF0 if message else 0
        if kind in (_NOTE_ON, _NOTE_OFF) and len(message) >= 3:
            key = (message[0] & 0x0F, message[1])
            if kind == _NOTE_ON and message[2] > 0:
                if self._muted.is_set():
                    self._swallowed.add(key)
                    self.heard_last = False
                    return
                self._swallowed.discard(key)  # a re-strike after the mute: this one sounds
            elif key in self._swallowed:
                self._swallowed.discard(key)
                self.heard_last = False
                return
        self.heard_last = False  # until the port took it: a failing send was not heard either
        self.port.send(message)
        self.heard_last = True

    def close(self) -> None:
        self.port.close()
