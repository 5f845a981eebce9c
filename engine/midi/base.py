"""The port protocol every input and output follows, real (rtmidi), file-backed or in memory."""
from __future__ import annotations

from typing import Callable, Protocol

# Called with the raw message bytes and the arrival time on the session clock (ns).
InputCallback = Callable[[bytes, int], None]


class PortError(Exception):
    """A port could not be found, opened or used; the message names the port."""


class InputPort(Protocol):
    name: str

    def set_callback(self, callback: InputCallback | None) -> None: ...

    def close(self) -> None: ...


class OutputPort(Protocol):
    name: str

    def send(self, message: bytes) -> None: ...

    def close(self) -> None: ...
