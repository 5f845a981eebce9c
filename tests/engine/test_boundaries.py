"""The engine is a library without a terminal: it imports and works without any UI toolkit."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

ENGINE_MODULES = [
    "engine.events", "engine.clock", "engine.metrics", "engine.bench", "engine.recorder",
    "engine.midi.ports", "engine.midi.system", "engine.midi.capture", "engine.midi.scheduler", "engine.midi.player",
    "engine.midi.midifile", "engine.midi.thru", "engine.midi.playback", "engine.midi.watch",
    "engine.session", "engine.generation", "engine.tokenizer", "engine.notes", "engine.conditions", "engine.listening", "engine.injection", "engine.presets", "engine.preset_files", "engine.generate", "engine.model.transformer",
    "engine.model.kv_cache", "engine.model.checkpoint", "engine.model.bench", "engine.stream",
    "engine.token_decoder", "engine.session_control", "engine.session_state", "engine.performer",
    "engine.ai_notes", "engine.jam_bench", "engine.simulate", "engine.continuation", "engine.realtime",
    "engine.session_turns",
    "engine.model.device",
]


def test_engine_imports_no_ui():
    # textual and rich made unimportable: a third-party package may use rich when it is
    # there (some do on other machines), but the engine must not need it.
    code = (
        "import importlib, sys\n"
        "class NoUI:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('textual', 'rich'):\n"
        "            raise ImportError(f'{name} is blocked')\n"
        "sys.meta_path.insert(0, NoUI())\n"
        f"for name in {ENGINE_MODULES!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_cli_help_is_light():
    code = "import sys, jamtui.cli; print(','.join(m for m in ('torch', 'textual', 'rtmidi') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
