"""`s` (rescan) in the console finds a JACK server started after the console, with its ports."""
from __future__ import annotations

import shutil
import signal
import subprocess
import uuid

import pytest
from textual.widgets import OptionList

from jamtui.bridge import default_ports_provider
from tests.conftest import _wait_for_jack, in_own_process
from tests.ui.rig import Rig, async_test, make_app, wait_for

pytestmark = pytest.mark.skipif(shutil.which("jackd") is None, reason="jackd is not installed (apt-get install jackd2)")


def listed(app, selector: str) -> list[str]:
    options = app.screen.query_one(selector, OptionList)
    return [options.get_option_at_index(i).id for i in range(options.option_count)]


@async_test
async def test_s_finds_a_jack_server_started_after_the_console(tmp_path, monkeypatch, request):
    if not in_own_process(request):
        return
    import rtmidi

    name = f"jamtui-late-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    monkeypatch.delenv("JAMTUI_MIDI_API", raising=False)
    app = make_app(Rig(), tmp_path, ports_provider=default_ports_provider(None))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.screen.query_one("#ports-error").render().plain
                       or listed(app, "#outputs"))  # no MIDI system yet, or ALSA's ports
        log_path = tmp_path / "jackd.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", "48000", "-p", "1024"], stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        synth = None
        try:
            _wait_for_jack(proc, log_path)
            synth = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="late-synth")
            synth.open_virtual_port("in")
            await pilot.press("s")
            await wait_for(pilot, lambda: "late-synth:in" in listed(app, "#outputs"))
            assert not app.screen.query_one("#ports-error").render().plain
        finally:
            if synth is not None:
                synth.delete()
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
