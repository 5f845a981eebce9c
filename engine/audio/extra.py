"""The optional audio extra: how to install it, and the one-line error when a part of it is missing."""
from __future__ import annotations

import contextlib
import importlib
import io
from types import ModuleType

TRANSKUN_VERSION = "2.0.1"  # its wheel ships the piano model's weights (pretrained/2.0.pt)
INSTALL_AUDIO = ("make setup-audio (or: pip install 'jamtui[audio]' && "
                 f"pip install --no-deps transkun=={TRANSKUN_VERSION})")
INSTALL_FLUIDSYNTH = "apt-get install fluidsynth fluid-soundfont-gm (or: brew install fluid-synth)"


class AudioExtraMissing(Exception):
    """Something the audio commands need is not installed; `str()` is one line saying what to install."""


def require(module: str, needed_for: str) -> ModuleType:
    """Import `module` (a package of the audio extra), or raise AudioExtraMissing naming it and
    the command that installs it. Whatever a package prints as it loads is dropped: pyfluidsynth
    (loaded by pretty_midi and mir_eval too) prints where it found its library when $CI is set, on
    the stdout that `--json` output keeps for itself."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return importlib.import_module(module)
    except ImportError as exc:
        raise AudioExtraMissing(f"{needed_for} needs the audio extra ({module} is missing: {exc}); "
                                f"install it with {INSTALL_AUDIO}") from exc
