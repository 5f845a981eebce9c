"""Real MIDI ports through python-rtmidi (ALSA, JACK, CoreMIDI, WinMM), found by name or suffix.

`open_input`/`open_output` take a port spec: an existing port's exact name or a unique
suffix of it, `virtual:NAME` for a port jamtui creates for a DAW to connect to, and, for
inputs, a `.mid` file path (or `file:PATH`), played as if a performer were playing it.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.clock import Clock, MonotonicClock
from engine.midi.base import InputCallback, PortError

log = logging.getLogger(__name__)

CLIENT_NAME = "jamtui"
VIRTUAL_IN = "jamtui in"
VIRTUAL_OUT = "jamtui out"
API_ENV = "JAMTUI_MIDI_API"
API_NAMES = ("auto", "alsa", "jack", "coremidi", "winmm")
# ALSA appends "client:port" numbers that change between boots; match names without them.
_ALSA_NUMBERS = re.compile(r"\s+\d+:\d+$")
# rtmidi's JACK output hands messages to JACK from a ring buffer once per period; a port
# closed sooner than a period or two after a send loses its last messages (measured: the
# reader got copies of the first message of the burst instead). Covers periods up to ~40 ms.
_JACK_DRAIN_NS = 100_000_000


def _rtmidi():
    import rtmidi  # heavy C extension: imported where ports are used

    _quiet_libjack(rtmidi)
    return rtmidi


_libjack_handlers: list = []  # ctypes callbacks must outlive their registration


def _quiet_libjack(rtmidi_module) -> None:
    """Send libjack's messages ("Cannot connect to server socket...") to our log.

    libjack prints them straight to fd 2, which is where the console draws and where a
    command's one-line error should stand alone. python-rtmidi's wheels carry their own
    libjack copy, so we register the handler on that copy when there is one.
    """
    if _libjack_handlers:
        return
    import ctypes

    site = Path(rtmidi_module.__file__).resolve().parent.parent
    candidates = [str(p) for p in sorted(site.glob("python_rtmidi*/libjack*.so*"))] + ["libjack.so.0"]
    handler_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
    handler = handler_type(lambda message: log.debug("libjack: %s", message.decode(errors="replace")))
    _libjack_handlers.append(handler)
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(candidate)
            lib.jack_set_error_function(handler)
            lib.jack_set_info_function(handler)
        except (OSError, AttributeError):
            continue


def _api_constant(name: str) -> int:
    rtmidi = _rtmidi()
    return {
        "alsa": rtmidi.API_LINUX_ALSA,
        "jack": rtmidi.API_UNIX_JACK,
        "coremidi": rtmidi.API_MACOSX_CORE,
        "winmm": rtmidi.API_WINDOWS_MM,
    }[name]


def compiled_apis() -> list[str]:
    rtmidi = _rtmidi()
    by_constant = {_api_constant(n): n for n in API_NAMES[1:]}
    return [by_constant[a] for a in rtmidi.get_compiled_api() if a in by_constant]


def resolve_api(name: str | None = None) -> str:
    """The MIDI API to use: `name`, else $JAMTUI_MIDI_API, else the first one that works here."""
    name = (name or os.environ.get(API_ENV) or "auto").lower()
    if name not in API_NAMES:
        raise PortError(f"unknown MIDI API '{name}' (choose from {', '.join(API_NAMES)})")
    available = compiled_apis()
    if name != "auto":
        if name not in available:
            raise PortError(f"MIDI API '{name}' is not built into python-rtmidi here (have: {', '.join(available)})")
        return name
    for candidate in available:
        if _api_usable(candidate):
            return candidate
    raise PortError(
        "no MIDI system found: no ALSA sequencer (/dev/snd/seq) and no running JACK server"
        f" (python-rtmidi has: {', '.join(available) or 'none'})"
    )


def _api_usable(name: str) -> bool:
    if name == "alsa":
        # Probing ALSA without a sequencer device makes libasound print errors; look first.
        return Path("/dev/snd/seq").exists()
    if name == "jack":
        os.environ.setdefault("JACK_NO_START_SERVER", "1")
    try:
        probe = _rtmidi().MidiOut(_api_constant(name), name=f"{CLIENT_NAME}-probe")
    except Exception:  # noqa: BLE001 - rtmidi raises its own SystemError subclasses
        return False
    probe.delete()
    return True


def _client(direction: str, api: str, name: str, **kw):
    """An rtmidi MidiIn/MidiOut; failures become a PortError that names the MIDI system."""
    rtmidi = _rtmidi()
    cls = rtmidi.MidiIn if direction == "input" else rtmidi.MidiOut
    try:
        return cls(_api_constant(api), name=name, **kw)
    except Exception as exc:  # noqa: BLE001 - rtmidi raises its own SystemError/RuntimeError kinds
        hint = " (is the JACK server running?)" if api == "jack" else ""
        raise PortError(f"cannot use MIDI system '{api}'{hint}: {exc}") from exc


@dataclass(frozen=True)
class PortList:
    api: str
    inputs: list[str]
    outputs: list[str]


def list_ports(api: str | None = None) -> PortList:
    api = resolve_api(api)
    midi_in = _client("input", api, f"{CLIENT_NAME}-list")
    try:
        midi_out = _client("output", api, f"{CLIENT_NAME}-list")
    except PortError:
        midi_in.delete()
        raise
    try:
        return PortList(api, midi_in.get_ports(), midi_out.get_ports())
    finally:
        midi_in.delete()
        midi_out.delete()


def match_port(names: list[str], wanted: str, direction: str) -> int:
    """Index of the port named exactly `wanted`, else of the one ending with it.

    Raises PortError naming the port and listing what exists when none or several match.
    """
    if wanted in names:
        return names.index(wanted)
    for candidates in (names, [_ALSA_NUMBERS.sub("", n) for n in names]):
        hits = [i for i, name in enumerate(candidates) if name.endswith(wanted)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            options = ", ".join(repr(names[i]) for i in hits)
            raise PortError(f"MIDI {direction} port '{wanted}' is ambiguous: it matches {options}")
    existing = ", ".join(repr(n) for n in names) or "none"
    raise PortError(f"no MIDI {direction} port matches '{wanted}' (existing {direction}s: {existing})")


def _matches(names: list[str], wanted: str, direction: str) -> bool:
    try:
        match_port(names, wanted, direction)
    except PortError:
        return False
    return True


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
        lister = _list_inputs if self.direction == "input" else _list_outputs
        return _matches(ports if ports is not None else lister(self.api), self.spec, self.direction)

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
        midi_in = _client("input", self.api, CLIENT_NAME, queue_size_limit=4096)
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
        midi_out = _client("output", self.api, CLIENT_NAME)
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


_list_lock = threading.Lock()
_listers: dict[tuple[str, str], object] = {}


def _lister(api: str, direction: str):
    # One long-lived client per API for polling, so a watcher does not create clients twice a second.
    key = (api, direction)
    with _list_lock:
        if key not in _listers:
            _listers[key] = _client(direction, api, f"{CLIENT_NAME}-watch")
        return _listers[key]


def _list_inputs(api: str) -> list[str]:
    return _lister(api, "input").get_ports()


def _list_outputs(api: str) -> list[str]:
    return _lister(api, "output").get_ports()


def is_midi_file_spec(spec: str) -> bool:
    return spec.startswith("file:") or spec.lower().endswith((".mid", ".midi", ".smf"))


def open_input(spec: str, *, api: str | None = None, clock: Clock | None = None, loop: bool = False):
    """An input by port spec, or a MIDI-file player for a `.mid` path / `file:PATH`."""
    clock = clock or MonotonicClock()
    if is_midi_file_spec(spec):
        from engine.midi.player import FilePlayerPort

        path = spec[len("file:"):] if spec.startswith("file:") else spec
        return FilePlayerPort.from_file(path, clock, loop=loop)
    return RtMidiInputPort(spec, api=api, clock=clock)


def open_output(spec: str, *, api: str | None = None) -> RtMidiOutputPort:
    return RtMidiOutputPort(spec, api=api)


def platform_hint() -> str:
    if sys.platform == "darwin":
        return "enable the IAC Driver in Audio MIDI Setup, or use jamtui's virtual ports"
    if sys.platform == "win32":
        return "install a loopback MIDI driver (e.g. loopMIDI) to connect jamtui to a DAW"
    return "start a JACK server or load the ALSA sequencer (snd-seq) to get MIDI ports"
