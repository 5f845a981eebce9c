"""The engine is a library without a terminal: it imports and works without any UI toolkit."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

ENGINE_MODULES = [
    "engine.events", "engine.clock", "engine.metrics", "engine.offline.bench", "engine.midi.recorder",
    "engine.midi.ports", "engine.midi.system", "engine.midi.capture", "engine.midi.scheduler", "engine.midi.file_input",
    "engine.midi.midifile", "engine.midi.thru", "engine.midi.file_output", "engine.midi.watch",
    "engine.duet.session", "engine.duet.worker", "engine.tokens.tokenizer", "engine.midi.notes", "engine.tokens.conditions", "engine.duet.listening", "engine.duet.injection", "engine.presets.schema", "engine.presets.files", "engine.model.sampling", "engine.model.transformer",
    "engine.model.kv_cache", "engine.model.checkpoint", "engine.model.bench", "engine.duet.context",
    "engine.tokens.decoder", "engine.duet.control", "engine.duet.report", "engine.duet.performer",
    "engine.duet.fitting", "engine.offline.bench_jam", "engine.offline.simulate", "engine.offline.continuation", "engine.realtime",
    "engine.duet.turns",
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
