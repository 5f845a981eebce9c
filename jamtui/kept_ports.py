"""`KeptPorts`: the console's ports kept open from one jam to the next, so that what JACK or a
DAW connected to them stays connected across a stop and a start."""
from __future__ import annotations

import logging
import threading
from typing import Any

from engine.clock import Clock, MonotonicClock
from engine.midi.ports import PortOpener, is_midi_file_spec

log = logging.getLogger(__name__)


class _KeptPort:
    """A port as a jam sees it: a jam that stops closes it, which hands it back to be kept."""

    def __init__(self, port, on_close) -> None:
        self._port = port
        self._on_close = on_close

    def close(self) -> None:
        self._on_close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)


class KeptPorts:
    """A port opener (see `engine.midi.ports.PortOpener`) for a run of jams. A jam that stops
    leaves its two ports open here (its session already silenced them), and the next jam on the
    same two port specs plays through them again; other specs close them and open anew. A
    `.mid` performer and jams on another clock than `MonotonicClock` (a `FakeClock`) get ports
    of their own each time. `close` (the
    console quitting, a jam that failed) really closes what is kept. Safe from any thread."""

    def __init__(self, opener: PortOpener) -> None:
        self._opener = opener
        self._lock = threading.Lock()
        self._kept: tuple[tuple[str, str], tuple[Any, Any]] | None = None

    def open(self, input_spec: str, output_spec: str, clock: Clock):
        specs = (input_spec, output_spec)
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is not None and kept[0] == specs:
            log.info("playing through the ports kept open from the last jam")
            ports = kept[1]
        else:
            if kept is not None:
                _close(kept[1])
            ports = self._opener(input_spec, output_spec, clock)
        # A file plays from its start each time; an input stamps arrivals with the clock it was
        # opened with, and only the real clock (stateless) can serve the next jam too.
        if is_midi_file_spec(input_spec) or type(clock) is not MonotonicClock:
            return ports
        handed_back: list[str] = []

        def give_back(which: str) -> None:
            handed_back.append(which)
            if len(set(handed_back)) == 2:
                with self._lock:
                    previous, self._kept = self._kept, (specs, ports)
                if previous is not None:
                    _close(previous[1])

        source, sink = ports
        return _KeptPort(source, lambda: give_back("in")), _KeptPort(sink, lambda: give_back("out"))

    def close(self) -> None:
        """Close the ports kept from the last jam, if any."""
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is not None:
            _close(kept[1])


def _close(ports: tuple[Any, Any]) -> None:
    for port in reversed(ports):
        try:
            port.close()
        except Exception:  # noqa: BLE001 - the port may be gone already
            log.exception("could not close the port %s", getattr(port, "name", port))
