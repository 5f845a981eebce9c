"""The one place engine state becomes Textual messages: Thru's lifecycle and stats, recordings, log records."""
from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Callable

from engine.clock import MonotonicClock
from engine.midi.base import PortError
from engine.midi.ports import PortList, list_ports, open_input, open_output, platform_hint
from engine.midi.thru import Thru
from jamtui.messages import (
    EngineFailed,
    LogRecorded,
    PortScanFailed,
    PortsScanned,
    RecordingFailed,
    RecordingSaved,
    RecordingsRecovered,
    RecordingStarted,
    StatsUpdated,
    ThruStarted,
    ThruStopped,
)

log = logging.getLogger(__name__)

ThruFactory = Callable[[str, str], Thru]
PortsProvider = Callable[[], PortList]
POLL_INTERVAL_S = 0.1


def default_recordings_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("jamtui")) / "recordings"


def open_thru(input_spec: str, output_spec: str, *, api: str | None = None) -> Thru:
    """Thru between two port specs (see `engine.midi.ports`), on the real clock."""
    clock = MonotonicClock()
    source = open_input(input_spec, api=api, clock=clock)
    try:
        sink = open_output(output_spec, api=api)
    except BaseException:
        source.close()
        raise
    return Thru(source, sink, clock=clock)


def default_ports_provider(api: str | None = None) -> PortsProvider:
    return lambda: list_ports(api)


class EngineBridge:
    """Runs Thru for the UI and reports what happened as messages posted to `target`.

    `scan`, `recover_recordings`, `start`, `stop` and `set_recording` block: call them from
    thread workers (`shutdown` too, or from the app thread when quitting). `poll` and `panic`
    run on the app thread. Lifecycle changes are serialised by one lock.
    """

    def __init__(self, *, thru_factory: ThruFactory, ports_provider: PortsProvider,
                 recordings_dir: Path) -> None:
        self.thru_factory = thru_factory
        self.ports_provider = ports_provider
        self.recordings_dir = Path(recordings_dir)
        self._target = None
        self._lock = threading.Lock()
        self._thru: Thru | None = None
        self._specs = ("", "")
        self._recorder = None
        self._record_armed = False
        self._failed: Thru | None = None
        self._closed = False
        self._last_stats = None

    def attach(self, target) -> None:
        """Post messages to `target` (a Textual message pump) and poll stats on its timer."""
        self._target = target
        target.set_interval(POLL_INTERVAL_S, self.poll)

    def _post(self, message) -> None:
        # post_message is thread-safe and never waits for the app (call_from_thread does).
        if self._target is not None:
            self._target.post_message(message)

    @property
    def thru(self) -> Thru | None:
        return self._thru

    # -- thread workers ----------------------------------------------------------------------

    def scan(self) -> None:
        try:
            ports = self.ports_provider()
        except PortError as exc:
            log.warning("%s", exc)
            self._post(PortScanFailed(str(exc), platform_hint()))
            return
        except Exception as exc:  # noqa: BLE001 - a broken MIDI driver must not take the console down
            log.exception("could not list MIDI ports")
            self._post(PortScanFailed(f"could not list MIDI ports: {exc}", platform_hint()))
            return
        self._post(PortsScanned(ports))

    def recover_recordings(self) -> None:
        from engine.recorder import recover

        try:
            recovered = recover(self.recordings_dir)
        except Exception as exc:  # noqa: BLE001 - the jam can go on without the old takes
            log.error("could not recover interrupted recordings in %s: %s", self.recordings_dir, exc)
            return
        if recovered:
            self._post(RecordingsRecovered([paths.midi_path for paths in recovered]))

    def start(self, input_spec: str, output_spec: str) -> None:
        with self._lock:
            if self._thru is not None or self._closed:
                return
            try:
                thru = self.thru_factory(input_spec, output_spec)
            except Exception as exc:  # noqa: BLE001 - a missing port or file is reported, not fatal
                log.error("could not start: %s", exc)
                self._post(EngineFailed(str(exc)))
                self._post(ThruStopped())
                return
            self._thru, self._specs, self._last_stats = thru, (input_spec, output_spec), None
            try:
                if self._record_armed:
                    self._start_recorder_locked()
                thru.start()
            except Exception as exc:  # noqa: BLE001 - whatever failed, end in silence
                log.exception("could not start thru")
                self._post(EngineFailed(str(exc)))
                self._stop_locked()
                return
            self._post(ThruStarted(thru.capture.port.name, thru.scheduler.port.name))

    def stop(self) -> None:
        """Stop Thru in silence, close the output and save the recording. Safe to repeat."""
        with self._lock:
            if self._thru is not None:
                self._stop_locked()

    def shutdown(self) -> None:
        """Stop for good: a start still queued in a worker will not play after this."""
        with self._lock:
            self._closed = True
            if self._thru is not None:
                self._stop_locked()

    def set_recording(self, on: bool) -> None:
        """Arm or disarm recording; while Thru runs, start or save the recording now."""
        with self._lock:
            self._record_armed = on
            if self._thru is None:
                return
            if on and self._recorder is None:
                self._start_recorder_locked()
            elif not on and self._recorder is not None:
                self._close_recorder_locked(self._thru)

    # -- app thread ------------------------------------------------------------------------

    def poll(self) -> None:
        thru = self._thru
        if thru is None:
            return
        stats = thru.stats()
        if stats != self._last_stats:
            self._last_stats = stats
            self._post(StatsUpdated(stats))
        if thru.error is not None and self._failed is not thru:
            # Thru silenced itself after the error; finishing the stop closes port and recording.
            self._failed = thru
            self._post(EngineFailed(f"engine stopped: {thru.error}"))
            self._target.run_worker(self.stop, thread=True, group="engine")

    def panic(self) -> bool:
        thru = self._thru
        if thru is None:
            return False
        thru.scheduler.panic()
        log.warning("panic: all notes and sound off on every channel")
        return True

    # -- internals (lock held) -----------------------------------------------------------------

    def _stop_locked(self) -> None:
        # Cleared first so `poll` no longer reads a Thru that is going away.
        thru, self._thru = self._thru, None
        try:
            thru.stop()
            # After an engine error Thru.stop already ran on its own thread; wait for its silence.
            thru.scheduler.stop()
        finally:
            try:
                thru.scheduler.port.close()
            except Exception:  # noqa: BLE001 - the port may be gone already
                log.exception("could not close the output port")
            self._close_recorder_locked(thru)
            self._post(StatsUpdated(thru.stats()))
            self._post(ThruStopped())

    def _start_recorder_locked(self) -> None:
        from engine.recorder import SessionRecorder

        thru = self._thru
        try:
            recorder = SessionRecorder(self.recordings_dir, thru.clock,
                                       meta={"in": self._specs[0], "out": self._specs[1]})
            recorder.start()
        except Exception as exc:  # noqa: BLE001 - the jam goes on unrecorded, and the UI says so
            log.error("could not record to %s: %s", self.recordings_dir, exc)
            self._post(RecordingFailed(str(exc)))
            return
        self._recorder = recorder
        thru.recorder = recorder  # Thru reads it per event, so recording can begin mid-jam
        self._post(RecordingStarted(recorder.journal_path))

    def _close_recorder_locked(self, thru: Thru) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        thru.recorder = None
        stats = thru.stats()
        try:
            paths = recorder.close(timings={
                "send_lateness_ms_p99": stats.scheduler.lateness_ms_p99,
                "send_lateness_ms_max": stats.scheduler.lateness_ms_max,
                "dropped_input": stats.capture.dropped,
            })
        except Exception as exc:  # noqa: BLE001 - its journal stays behind for `recover`
            log.exception("could not save the recording")
            self._post(RecordingFailed(str(exc)))
            return
        self._post(RecordingSaved(paths.midi_path))


class UILogHandler(logging.Handler):
    """Posts every log record to `target` as `LogRecorded`, from whichever thread logged it.

    Not `call_from_thread`: it waits for the app, which may itself be joining the engine
    thread that is logging, and it refuses to run on the app thread.
    """

    def __init__(self, target) -> None:
        super().__init__()
        self.target = target
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.target.post_message(LogRecorded(record, self.format(record)))
        except Exception:  # noqa: BLE001 - logging must never raise into the engine
            self.handleError(record)


class LogCapture:
    """Routes root-logger records to the UI while it owns the terminal, and back afterwards."""

    def __init__(self, target, level: int = logging.INFO) -> None:
        self.handler = UILogHandler(target)
        self.level = level
        self._muted: list[logging.Handler] = []
        self._saved_level: int | None = None

    def install(self) -> None:
        root = logging.getLogger()
        # A handler writing to the terminal would draw over the UI.
        terminal = {sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__}
        self._muted = [h for h in root.handlers if getattr(h, "stream", None) in terminal]
        for handler in self._muted:
            root.removeHandler(handler)
        root.addHandler(self.handler)
        if root.level > self.level:
            self._saved_level = root.level
            root.setLevel(self.level)

    def uninstall(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        for handler in self._muted:
            root.addHandler(handler)
        self._muted = []
        if self._saved_level is not None:
            root.setLevel(self._saved_level)
            self._saved_level = None
