"""The engine is a library without a terminal: it imports and works without any UI toolkit."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

# Runs in a child interpreter with textual and rich made unimportable: a third-party package may
# use rich when it is there (some do on other machines), but the engine must not need it. Every
# module of the engine package is imported, found by walking it, so a new one is covered.
WALK_WITHOUT_UI = """
import importlib, json, pkgutil, sys

UI = ('textual', 'rich')


class NoUI:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in UI:
            raise ImportError(f'{name} is blocked')


sys.meta_path.insert(0, NoUI())
import engine

failed = {}


def record(name, exc):
    missing = getattr(exc, 'name', None) if isinstance(exc, ModuleNotFoundError) else None
    failed[name] = {'error': f'{type(exc).__name__}: {exc}', 'missing': missing}


walked = []
for info in pkgutil.walk_packages(engine.__path__, 'engine.', onerror=lambda name: record(name, sys.exc_info()[1])):
    walked.append(info.name)
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        record(info.name, exc)
ui = sorted(m for m in sys.modules if m.split('.')[0] in UI)
print(json.dumps({'walked': walked, 'failed': failed, 'ui': ui}))
"""


def test_engine_imports_no_ui():
    result = subprocess.run([sys.executable, "-c", WALK_WITHOUT_UI], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert {"engine.events", "engine.duet.session", "engine.model.load"} <= set(found["walked"])
    assert found["ui"] == []
    # Only an optional third-party extra that is not installed may keep a module from loading.
    optional_missing = {name: f["missing"] for name, f in found["failed"].items()
                        if f["missing"] and f["missing"].split(".")[0] not in ("engine", "textual", "rich")}
    assert {name: f["error"] for name, f in found["failed"].items() if name not in optional_missing} == {}


def test_cli_help_is_light():
    code = "import sys, jamtui.cli; print(','.join(m for m in ('torch', 'textual', 'rtmidi') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
