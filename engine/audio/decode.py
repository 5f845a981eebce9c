"""Sound files in: WAV, FLAC, OGG and MP3 (where the installed libsndfile decodes it) read into
float32 samples at the rate a model wants. Every failure is a one-line `AudioFileError` naming the file."""
from __future__ import annotations

import math
import os
from pathlib import Path

from engine.audio.extra import require

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".aif", ".aiff"})
MAX_CHANNELS = 2  # more (a multitrack session) is mixed down to stereo's two sides


class AudioFileError(Exception):
    """A sound file could not be read; `str()` is one line: `<path>: <reason>`."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = " ".join(reason.split())
        super().__init__(f"{path}: {self.reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason)


def is_audio_path(path: str | os.PathLike[str]) -> bool:
    """Whether `path`'s suffix names a sound file this module reads."""
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def audio_duration_s(path: str | os.PathLike[str]) -> float:
    """The length of the sound file at `path` in seconds, read from its header."""
    soundfile = require("soundfile", "reading audio")
    shown = os.fsdecode(path)
    _check_file(path, shown)
    try:
        info = soundfile.info(os.fspath(path))
    except (RuntimeError, TypeError, ValueError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        raise AudioFileError(shown, f"cannot decode ({_reason(exc)})") from exc
    return info.frames / info.samplerate if info.samplerate else 0.0


def read_audio(path: str | os.PathLike[str], sample_rate: int):
    """The samples of `path` as a float32 array `(frames, channels)`, 1 or 2 channels, resampled
    to `sample_rate`. A file with no samples is an `AudioFileError`."""
    import numpy as np

    soundfile = require("soundfile", "reading audio")
    shown = os.fsdecode(path)
    _check_file(path, shown)
    try:
        samples, file_rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise AudioFileError(shown, f"cannot decode ({_reason(exc)})") from exc
    except MemoryError as exc:
        raise AudioFileError(shown, "too long to decode in this machine's memory") from exc
    if samples.shape[0] == 0:
        raise AudioFileError(shown, "holds no audio (0 samples)")
    if samples.shape[1] > MAX_CHANNELS:
        samples = np.stack([samples[:, 0::2].mean(axis=1), samples[:, 1::2].mean(axis=1)], axis=1)
    if file_rate != sample_rate:
        samples = resample(samples, file_rate, sample_rate)
    return np.ascontiguousarray(samples, dtype=np.float32)


def resample(samples, from_rate: int, to_rate: int):
    """`samples (frames, channels)` from `from_rate` to `to_rate` (polyphase, anti-aliased)."""
    from scipy.signal import resample_poly

    common = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(samples, to_rate // common, from_rate // common, axis=0).astype("float32")


def _check_file(path: str | os.PathLike[str], shown: str) -> None:
    try:
        if not os.path.exists(path):
            raise AudioFileError(shown, "no such file")
        if os.path.isdir(path):
            raise AudioFileError(shown, "is a directory")
        if os.path.getsize(path) == 0:
            raise AudioFileError(shown, "empty file (0 bytes)")
    except (OSError, ValueError) as exc:
        raise AudioFileError(shown, f"cannot read file ({exc})") from exc


def _reason(exc: BaseException) -> str:
    text = str(exc)
    # libsndfile repeats the path: "Error opening 'x.mp3': Format not recognised."
    return text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text or type(exc).__name__
