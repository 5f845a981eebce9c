"""The MIDI system python-rtmidi talks to (ALSA, JACK, CoreMIDI, WinMM): which one to use,
its clients, the ports it lists and matching a port spec against their names."""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.midi.base import PortError

log = logging.getLogger(__name__)

CLIENT_NAME = "jamtui"
API_ENV = "JAMTUI_MIDI_API"
API_NAMES = ("auto", "alsa", "jack", "coremidi", "winmm")
# ALSA appends "client:port" numbers that change between boots; match names without them.
_ALSA_NUMBERS = re.compile(r"\s+\d+:\d+$")


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
    """The MIDI API to use: `name`, else $JAMTUI_MIDI_API, else the first one that works here,
    asked again at every call (so a rescan finds a JACK server started after the console)."""
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


def rtmidi_client(direction: str, api: str, name: str, **kw):
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
    midi_in = rtmidi_client("input", api, f"{CLIENT_NAME}-list")
    try:
        midi_out = rtmidi_client("output", api, f"{CLIENT_NAME}-list")
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


def port_matches(names: list[str], wanted: str, direction: str) -> bool:
    """Whether exactly one of `names` is the port `wanted` names (see `match_port`)."""
    try:
        match_port(names, wanted, direction)
    except PortError:
        return False
    return True


_list_lock = threading.Lock()
_listers: dict[tuple[str, str], object] = {}


def _lister(api: str, direction: str):
    # One long-lived client per API for polling, so a watcher does not create clients twice a second.
    key = (api, direction)
    with _list_lock:
        if key not in _listers:
            _listers[key] = rtmidi_client(direction, api, f"{CLIENT_NAME}-watch")
        return _listers[key]


def polled_ports(api: str, direction: str) -> list[str]:
    """The `direction` ("input" or "output") port names listed now, through a long-lived client."""
    return _lister(api, direction).get_ports()


def platform_hint() -> str:
    if sys.platform == "darwin":
        return "enable the IAC Driver in Audio MIDI Setup, or use jamtui's virtual ports"
    if sys.platform == "win32":
        return "install a loopback MIDI driver (e.g. loopMIDI) to connect jamtui to a DAW"
    return "start a JACK server or load the ALSA sequencer (snd-seq) to get MIDI ports"
