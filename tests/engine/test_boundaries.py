"""The engine is a library without a terminal: importing it loads no UI toolkit."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

ENGINE_MODULES = [
    "engine.events", "engine.clock", "engine.metrics", "engine.bench", "engine.recorder",
    "engine.midi.ports", "engine.midi.capture", "engine.midi.scheduler", "engine.midi.player",
    "engine.midi.midifile", "engine.midi.thru", "engine.midi.playback", "engine.midi.watch",
    "engine.session", "engine.generation", "engine.tokenizer", "engine.notes", "engine.conditions", "engine.listening", "engine.injection", "engine.presets", "engine.generate", "engine.model.transformer",
    "engine.model.kv_cache", "engine.model.checkpoint", "engine.model.bench",
]


def test_engine_imports_no_ui():
    code = (
        "import importlib, sys\n"
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
