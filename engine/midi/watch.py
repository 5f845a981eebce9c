"""Notices ports that vanish and reopens them by name when they come back (polling)."""
from __future__ import annotations

import logging
import threading
from typing import Callable, Protocol

log = logging.getLogger(__name__)


class Reopenable(Protocol):
    name: str
    connected: bool

    def present(self) -> bool: ...

    def disconnect(self) -> None: ...

    def reopen(self) -> bool: ...


class PortWatcher:
    """Polls each watched port every `interval_s`; reports changes through `on_change(port, connected)`."""

    def __init__(
        self,
        ports: list[Reopenable],
        *,
        interval_s: float = 0.5,
        on_change: Callable[[Reopenable, bool], None] | None = None,
    ) -> None:
        self.ports = [p for p in ports if hasattr(p, "present")]
        self.interval_s = interval_s
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.disconnects = 0
        self.reconnects = 0

    def start(self) -> None:
        if self.ports:
            self._thread = threading.Thread(target=self._run, name="jamtui-port-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def poll_once(self) -> None:
        for port in self.ports:
            try:
                present = port.present()
            except Exception:  # noqa: BLE001 - listing can fail while a server restarts
                log.debug("could not list ports for %s", port.name, exc_info=True)
                continue
            if port.connected and not present:
                log.warning("MIDI port '%s' vanished; waiting for it to come back", port.name)
                port.disconnect()
                self.disconnects += 1
                self._notify(port, False)
            elif not port.connected and present and port.reopen():
                log.info("MIDI port '%s' is back; reopened", port.name)
                self.reconnects += 1
                self._notify(port, True)

    def _notify(self, port: Reopenable, connected: bool) -> None:
        if self._on_change is not None:
            self._on_change(port, connected)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll_once()
