"""Real MIDI ports through python-rtmidi (ALSA, JACK, CoreMIDI, WinMM), found by name or suffix.

`open_input`/`open_output` take a port spec: an existing port's exact name or a unique
suffix of it, `virtual:NAME` for a port jamtui creates for a DAW to connect to, and, for
inputs, a `.mid` file path (or `file:PATH`), played as if a performer were playing it.
Choosing the MIDI system, listing its ports and matching names live in `engine.midi.system`.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from engine.clock import Clock, MonotonicClock
from engine.midi.base import InputCallback, PortError
from engine.midi.system import CLIENT_NAME, match_port, polled_ports, port_matches, resolve_api, rtmidi_client

VIRTUAL_IN = "jamtui in"
VIRTUAL_OUT = "jamtui out"
# rtmidi's JACK output hands messages to JACK from a ring buffer once per period; a port
# closed sooner than a period or two after a send loses its last messages (measured: the
# reader got copies of the first message of the burst instead). Covers periods up to ~40 ms.
_JACK_DRAIN_NS = 100_000_000


def _virtual_name(spec: str) -> str | None:
    if spec.startswith("virtual:"):
        return spec[len("virtual:"):] or None
    return None


class _ReopenablePort:
    """What input and output ports share: presence by spec, disconnect and reopen by name."""

    direction = "input"
    _virtual: str | None
    _lock: threading.Lock
    api: str
    spec: str
    connected: bool

    def _open(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Close and free the rtmidi object (called with the lock held)."""
        raise NotImplementedError

    def present(self, ports: list[str] | None = None) -> bool:
        """Whether the port we opened by name is listed now (always True for virtual ports)."""
        if self._virtual:
            return True
        names = ports if ports is not None else polled_ports(self.api, self.direction)
        return port_matches(names, self.spec, self.direction)

    def disconnect(self) -> None:
        with self._lock:
            self._release()
            self.connected = False

    def reopen(self) -> bool:
        """Try to open the port again by its spec; True when connected."""
        with self._lock:
            if self.connected:
                return True
            try:
                self._open()
            except PortError:
                return False
            return True

    def close(self) -> None:
        self.disconnect()


class RtMidiInputPort(_ReopenablePort):
    """An rtmidi input opened by name (reopened when it comes back) or created as virtual.

    With ALSA, CoreMIDI and WinMM the callback runs on rtmidi's own input thread. With JACK,
    rtmidi would call it on JACK's real-time process thread, where waiting for Python's GIL
    makes the whole JACK graph miss cycles (measured here: xruns and lost messages under a
    clock flood). So with JACK a capture thread polls rtmidi's lock-free queue instead,
    stamping each message when it takes it (at most `poll_s` after it arrived).
    """

    poll_s = 0.0005

    def __init__(self, spec: str, *, api: str | None = None, clock: Clock | None = None) -> None:
        self.api = resolve_api(api)
        self.spec = spec
        self.clock = clock or MonotonicClock()
        self._virtual = _virtual_name(spec)
        self._callback: InputCallback | None = None
        self._lock = threading.Lock()
        self._midi_in = None
        self.connected = False
        self.name = spec
        self._poll_stop = threading.Event()
        self._poll_thread: threading.Thread | None = None
        self._open()

    def _open(self) -> None:
        midi_in = rtmidi_client("input", self.api, CLIENT_NAME, queue_size_limit=4096)
        try:
            # Sysex, clock and active sensing are wanted: capture handles them on purpose.
            midi_in.ignore_types(sysex=False, timing=False, active_sense=False)
            if self._virtual:
                midi_in.open_virtual_port(self._virtual)
                self.name = self._virtual
            else:
                ports = midi_in.get_ports()
                index = match_port(ports, self.spec, "input")
                midi_in.open_port(index, name="listen")
                self.name = ports[index]
            if self.api != "jack":
                midi_in.set_callback(self._on_message)
        except BaseException:
            midi_in.delete()
            raise
        self._midi_in = midi_in
        self.connected = True
        if self.api == "jack":
            self._poll_stop.clear()
            self._poll_thread = threading.Thread(
                target=self._poll, args=(midi_in,), name="jamtui-capture", daemon=True
            )
            self._poll_thread.start()

    def _poll(self, midi_in) -> None:
        wait = self._poll_stop.wait
        while not self._poll_stop.is_set():
            message = midi_in.get_message()
            if message is None:
                wait(self.poll_s)
                continue
            callback = self._callback
            if callback is not None:
                callback(bytes(message[0]), self.clock.now_ns())

    def _on_message(self, event, _data=None) -> None:
        t_ns = self.clock.now_ns()
        callback = self._callback
        if callback is not None:
            callback(bytes(event[0]), t_ns)

    def set_callback(self, callback: InputCallback | None) -> None:
        self._callback = callback

    def _release(self) -> None:
        self._poll_stop.set()
        if self._poll_thread is not None and self._poll_thread is not threading.current_thread():
            self._poll_thread.join(1.0)
        self._poll_thread = None
        if self._midi_in is not None:
            if self.api != "jack":
                self._midi_in.cancel_callback()
            self._midi_in.close_port()
            self._midi_in.delete()
            self._midi_in = None

    def close(self) -> None:
        self._callback = None
        self.disconnect()


class RtMidiOutputPort(_ReopenablePort):
    """An rtmidi output opened by name or created as a virtual port for a DAW to read."""

    direction = "output"

    def __init__(self, spec: str, *, api: str | None = None) -> None:
        self.api = resolve_api(api)
        self.spec = spec
        self._virtual = _virtual_name(spec)
        self._lock = threading.Lock()
        self._midi_out = None
        self._last_send_ns = 0
        self.connected = False
        self.name = spec
        self._open()

    def _open(self) -> None:
        midi_out = rtmidi_client("output", self.api, CLIENT_NAME)
        try:
            if self._virtual:
                midi_out.open_virtual_port(self._virtual)
                self.name = self._virtual
            else:
                ports = midi_out.get_ports()
                index = match_port(ports, self.spec, "output")
                midi_out.open_port(index, name="play")
                self.name = ports[index]
        except BaseException:
            midi_out.delete()
            raise
        self._midi_out = midi_out
        self.connected = True

    def send(self, message: bytes) -> None:
        # Under the lock: a disconnect (the port watcher's thread) frees the rtmidi object,
        # and sending through a freed one crashes the process.
        with self._lock:
            if self._midi_out is None:
                raise PortError(f"MIDI output port '{self.name}' is disconnected")
            self._midi_out.send_message(message)
            self._last_send_ns = time.monotonic_ns()

    def _release(self) -> None:
        if self._midi_out is not None:
            if self.api == "jack":  # let JACK take what was just sent (e.g. the silence at a stop)
                wait_ns = self._last_send_ns + _JACK_DRAIN_NS - time.monotonic_ns()
                if wait_ns > 0:
                    time.sleep(wait_ns / 1e9)
            self._midi_out.close_port()
            self._midi_out.delete()
            self._midi_out = None


def is_midi_file_spec(spec: str) -> bool:
    return spec.startswith("file:") or spec.lower().endswith((".mid", ".midi", ".smf"))


def open_input(spec: str, *, api: str | None = None, clock: Clock | None = None, loop: bool = False):
    """An input by port spec, or a MIDI-file player for a `.mid` path / `file:PATH`."""
    clock = clock or MonotonicClock()
    if is_midi_file_spec(spec):
        from engine.midi.file_input import FilePlayerPort

        path = spec[len("file:"):] if spec.startswith("file:") else spec
        return FilePlayerPort.from_file(path, clock, loop=loop)
    return RtMidiInputPort(spec, api=api, clock=clock)


def open_output(spec: str, *, api: str | None = None) -> RtMidiOutputPort:
    return RtMidiOutputPort(spec, api=api)


PortOpener = Callable[[str, str, Clock], tuple[Any, Any]]  # (input spec, output spec, clock) -> (input, output)


def open_ports(input_spec: str, output_spec: str, *, api: str | None = None, clock: Clock | None = None):
    """(input, output) by port spec; the input is closed again if the output cannot be opened."""
    source = open_input(input_spec, api=api, clock=clock)
    try:
        return source, open_output(output_spec, api=api)
    except BaseException:
        source.close()
        raise
