"""Textual messages the bridge posts when something happened in the engine (past tense names)."""
from __future__ import annotations

import logging
from pathlib import Path

from textual.message import Message


class PortsScanned(Message):
    """The MIDI system listed its ports (`ports` is an `engine.midi.system.PortList`)."""

    def __init__(self, ports) -> None:
        super().__init__()
        self.ports = ports


class PortScanFailed(Message):
    """No MIDI system to list ports from; `hint` says how to get one on this platform."""

    def __init__(self, error: str, hint: str) -> None:
        super().__init__()
        self.error = error
        self.hint = hint


class ModelLoadStarted(Message):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class ModelLoaded(Message):
    def __init__(self, name: str, load_s: float, device: str) -> None:
        super().__init__()
        self.name = name
        self.load_s = load_s
        self.device = device


class ModelLoadFailed(Message):
    def __init__(self, name: str, error: str) -> None:
        super().__init__()
        self.name = name
        self.error = error


class JamStarted(Message):
    """A session runs: the performer on `input_name`, the AI on `output_name`."""

    def __init__(self, input_name: str, output_name: str, preset_name: str, mode: str) -> None:
        super().__init__()
        self.input_name = input_name
        self.output_name = output_name
        self.preset_name = preset_name
        self.mode = mode


class JamStopped(Message):
    """The session ended (or never started) and its output went silent."""


class PerformerFinished(Message):
    """The .mid file playing the performer came to its end; the jam goes on until stopped."""


class MetricsUpdated(Message):
    """Fresh session figures: `metrics` is an `engine.duet.session.SessionMetrics`, `output` the
    scheduler's `SchedulerStats`, `preset_name` the preset the session plays now."""

    def __init__(self, metrics, output, preset_name: str) -> None:
        super().__init__()
        self.metrics = metrics
        self.output = output
        self.preset_name = preset_name


class NotesHeard(Message):
    """Both players' last seconds as heard, the AI's written-ahead notes and what the jam hears
    of the performer: `recent` is an `engine.duet.heard.RecentNotes` (one per poll, not per note;
    its `listening` and `key` only every few polls, else None)."""

    def __init__(self, recent) -> None:
        super().__init__()
        self.recent = recent


class SessionEventsHappened(Message):
    """`engine.duet.session.SessionEvent`s since the last poll, oldest first."""

    def __init__(self, events: list) -> None:
        super().__init__()
        self.events = events


class EngineFailed(Message):
    """The jam could not start, or stopped itself after an error (its output is silent)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class RecordingStarted(Message):
    def __init__(self, journal_path: Path) -> None:
        super().__init__()
        self.journal_path = journal_path


class RecordingSaved(Message):
    def __init__(self, midi_path: Path) -> None:
        super().__init__()
        self.midi_path = midi_path


class RecordingFailed(Message):
    """A recording could not start or be saved; the jam itself goes on."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class TakeKept(Message):
    """The keep-take key was handled: `midi_path` (None: no recording yet) went into the corpus
    `corpus` when `kept`, else `reason` says why not."""

    def __init__(self, midi_path: Path | None, corpus: str, kept: bool, reason: str = "") -> None:
        super().__init__()
        self.midi_path = midi_path
        self.corpus = corpus
        self.kept = kept
        self.reason = reason


class RecordingsRecovered(Message):
    """Journals a crashed session left behind were turned into MIDI files."""

    def __init__(self, midi_paths: list[Path]) -> None:
        super().__init__()
        self.midi_paths = midi_paths


class LogRecorded(Message):
    def __init__(self, record: logging.LogRecord, text: str) -> None:
        super().__init__()
        self.record = record
        self.text = text
