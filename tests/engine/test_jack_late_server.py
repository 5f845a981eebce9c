"""A rescan finds a JACK server started after the console: the MIDI system is chosen again at
every listing (ALSA first where it works, as before)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from engine.midi import system
from engine.midi.base import PortError
from tests.conftest import in_own_process


def test_auto_is_asked_again_at_every_listing(monkeypatch):
    monkeypatch.delenv(system.API_ENV, raising=False)
    monkeypatch.setattr(system, "compiled_apis", lambda: ["alsa", "jack"])
    running = {"alsa": False, "jack": False}
    monkeypatch.setattr(system, "_api_usable", lambda api: running[api])
    with pytest.raises(PortError):
        system.resolve_api()
    running["jack"] = True  # JACK started after the first scan
    assert system.resolve_api() == "jack"
    running["alsa"] = True  # with ALSA usable it stays first: hardware that only ALSA sees stays listed
    assert system.resolve_api() == "alsa"
    assert system.resolve_api("jack") == "jack"  # asked for by name, it is used


@pytest.mark.skipif(shutil.which("jackd") is None, reason="jackd is not installed (apt-get install jackd2)")
def test_a_listing_after_jack_starts_sees_its_ports(monkeypatch, tmp_path, request):
    if not in_own_process(request):
        return
    import rtmidi

    name = f"jamtui-late-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    monkeypatch.delenv(system.API_ENV, raising=False)
    if os.path.exists("/dev/snd/seq"):  # with ALSA here, the first listing is ALSA's
        assert system.list_ports().api == "alsa"
    else:
        with pytest.raises(PortError, match="no MIDI system found"):
            system.list_ports()
    log = open(tmp_path / "jackd.log", "wb")
    proc = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", "48000", "-p", "1024"], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    synth = None
    try:
        deadline = time.monotonic() + 15
        while synth is None:
            try:
                synth = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="late-synth")
            except Exception:  # noqa: BLE001 - the server is still coming up
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"jackd did not come up: {(tmp_path / 'jackd.log').read_text(errors='replace')}")
                time.sleep(0.2)
        synth.open_virtual_port("in")
        ports = system.list_ports()
        assert ports.api == "jack" and "late-synth:in" in ports.outputs  # a synth: somewhere to send to
    finally:
        if synth is not None:
            synth.delete()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        log.close()
