"""The one place engine state becomes Textual messages: the jam `Session`'s lifecycle, metrics
and events, the model it plays, recordings and port scans."""
from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable

from engine.clock import Clock, MonotonicClock
from engine.midi.base import PortError
from engine.midi.ports import open_input, open_output
from engine.midi.system import PortList, list_ports, platform_hint
from engine.midi.watch import PortWatcher
from engine.realtime import quiet_the_interpreter
from engine.presets.schema import Preset, resolve_model_path
from jamtui.messages import (
    EngineFailed,
    JamStarted,
    JamStopped,
    MetricsUpdated,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoadStarted,
    PortScanFailed,
    PortsScanned,
    RecordingFailed,
    RecordingSaved,
    RecordingsRecovered,
    RecordingStarted,
    SessionEventsHappened,
)

log = logging.getLogger(__name__)

PortOpener = Callable[[str, str, Clock], tuple[Any, Any]]  # (input spec, output spec, clock) -> (input, output)
ModelLoader = Callable[[Path], tuple[Any, Any]]  # checkpoint directory -> (live model, tokenizer)
PortsProvider = Callable[[], PortList]
POLL_INTERVAL_S = 0.1


def default_recordings_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("jamtui")) / "recordings"


def open_ports(input_spec: str, output_spec: str, clock: Clock, *, api: str | None = None) -> tuple[Any, Any]:
    """(input, output) by port spec (see `engine.midi.ports`); the input is closed again if the output fails."""
    source = open_input(input_spec, api=api, clock=clock)
    try:
        return source, open_output(output_spec, api=api)
    except BaseException:
        source.close()
        raise


def load_model(path: Path) -> tuple[Any, Any]:
    """The checkpoint as the headless jam loads it (fp32 on CPU with one torch thread, fp16 on CUDA)."""
    from engine.model.load import load_model

    return load_model(path)


def default_ports_provider(api: str | None = None) -> PortsProvider:
    return lambda: list_ports(api)


def _device(model) -> str:
    try:
        return f"{model.device.type} {str(model.dtype).removeprefix('torch.')}"
    except AttributeError:
        return "?"


class EngineBridge:
    """Runs the jam `Session` for the UI and reports what happened as messages posted to `target`.

    `scan`, `recover_recordings`, `prepare_model`, `start`, `stop` and `set_recording` block:
    call them from thread workers (`shutdown` too, or from the app thread when quitting).
    `poll`, `panic`, `set_mode` and `set_preset` never wait for the model: they run on the app
    thread. Lifecycle changes are serialised by one lock; model loads by another, so a quit
    never waits for a model to load.
    """

    def __init__(self, *, port_opener: PortOpener, ports_provider: PortsProvider, model_loader: ModelLoader,
                 recordings_dir: Path) -> None:
        self.port_opener = port_opener
        self.ports_provider = ports_provider
        self.model_loader = model_loader
        self.recordings_dir = Path(recordings_dir)
        self._target = None
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._models: dict[Path, tuple[Any, Any]] = {}
        self._session = None
        self._ports: tuple[Any, Any] | None = None
        self._watcher: PortWatcher | None = None
        self._meta: dict[str, str] = {}
        self._recorder = None
        self._record_armed = False
        self._failed = None
        self._closed = False
        self.saved: list[Path] = []  # every recording saved, for a summary once the screen is gone

    def attach(self, target) -> None:
        """Post messages to `target` (a Textual message pump) and poll the session on its timer."""
        self._target = target
        target.set_interval(POLL_INTERVAL_S, self.poll)

    def _post(self, message) -> None:
        # post_message is thread-safe and never waits for the app (call_from_thread does).
        if self._target is not None:
            self._target.post_message(message)

    @property
    def session(self):
        """The running `engine.duet.session.Session`, or None."""
        return self._session

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
        from engine.midi.recorder import recover

        try:
            recovered = recover(self.recordings_dir)
        except Exception as exc:  # noqa: BLE001 - the jam can go on without the old takes
            log.error("could not recover interrupted recordings in %s: %s", self.recordings_dir, exc)
            return
        if recovered:
            self._post(RecordingsRecovered([paths.midi_path for paths in recovered]))

    def prepare_model(self, preset: Preset) -> tuple[Any, Any] | None:
        """The (model, tokenizer) the preset names, loaded once and kept; None (and a
        `ModelLoadFailed`) if it cannot be loaded."""
        try:
            path = resolve_model_path(preset)
        except Exception as exc:  # noqa: BLE001 - a preset naming a missing model is reported
            self._post(ModelLoadFailed(preset.model.path, str(exc)))
            return None
        with self._model_lock:
            if path in self._models:
                return self._models[path]
            self._post(ModelLoadStarted(path.name))
            started = time.perf_counter()
            try:
                loaded = self.model_loader(path)
            except Exception as exc:  # noqa: BLE001 - the console stays up and says why
                log.error("could not load the model %s: %s", path, exc)
                self._post(ModelLoadFailed(path.name, str(exc)))
                return None
            self._models[path] = loaded
            load_s = time.perf_counter() - started
            log.info("model %s ready (%s) in %.1f s", path.name, _device(loaded[0]), load_s)
            self._post(ModelLoaded(path.name, load_s, _device(loaded[0])))
            return loaded

    def start(self, input_spec: str, output_spec: str, preset: Preset) -> None:
        """Load the preset's model if needed, open the ports and start the session."""
        loaded = self.prepare_model(preset)  # outside the lifecycle lock: a quit must not wait for it
        if loaded is None:
            self._post(EngineFailed("no model to play with (see the log)"))
            self._post(JamStopped())
            return
        with self._lock:
            if self._session is not None or self._closed:
                return
            clock = MonotonicClock()
            try:
                source, sink = self.port_opener(input_spec, output_spec, clock)
            except Exception as exc:  # noqa: BLE001 - a missing port or file is reported, not fatal
                log.error("could not start: %s", exc)
                self._post(EngineFailed(str(exc)))
                self._post(JamStopped())
                return
            self._ports = (source, sink)
            self._meta = {"in": source.name, "out": sink.name, "preset": preset.name}
            try:
                from engine.duet.session import Session

                self._session = Session(source, sink, loaded[0], loaded[1], preset, clock=clock)
                if self._record_armed:
                    self._start_recorder_locked()
                quiet_the_interpreter()
                self._session.start()
                self._watcher = PortWatcher([source, sink])
                self._watcher.start()
            except Exception as exc:  # noqa: BLE001 - whatever failed, end in silence
                log.exception("could not start the jam")
                self._post(EngineFailed(str(exc)))
                self._stop_locked()
                return
            self._post(JamStarted(source.name, sink.name, preset.name, self._session.mode))

    def stop(self) -> None:
        """Stop the session in silence, close the ports and save the recording. Safe to repeat."""
        with self._lock:
            if self._ports is not None:
                self._stop_locked()

    def shutdown(self) -> None:
        """Stop for good: a start still queued in a worker will not play after this."""
        with self._lock:
            self._closed = True
            if self._ports is not None:
                self._stop_locked()

    def set_recording(self, on: bool) -> None:
        """Arm or disarm recording; while the jam runs, start or save the recording now."""
        with self._lock:
            self._record_armed = on
            if self._session is None:
                return
            if on and self._recorder is None:
                self._start_recorder_locked()
            elif not on and self._recorder is not None:
                self._close_recorder_locked(self._session)

    # -- app thread ----------------------------------------------------------------------------

    def poll(self) -> None:
        """Read the session's metrics and events (neither waits for the model) and post them."""
        session = self._session
        if session is None:
            return
        events = session.events()
        metrics = session.metrics()
        self._post(MetricsUpdated(metrics, session.scheduler.stats(), metrics.preset))
        if events:
            self._post(SessionEventsHappened(events))
        # A dead control loop or output thread: the session stopped itself and says why.
        if session.error is None:
            return
        failed = next((e for e in events if e.kind == "failed"), None)
        where = failed.detail.get("where") if failed is not None else None
        failure = f"{'output' if where == 'output' else 'session'} stopped: {session.error}"
        if self._failed is not session:
            self._failed = session
            self._post(EngineFailed(failure))
            self._target.run_worker(self.stop, thread=True, group="engine")

    def panic(self) -> bool:
        session = self._session
        if session is None:
            return False
        session.panic()
        log.warning("panic: all notes and sound off on every channel")
        return True

    def set_mode(self, mode: str) -> bool:
        session = self._session
        if session is None:
            return False
        session.set_mode(mode)
        return True

    def set_preset(self, preset: Preset) -> bool:
        """Hand the session `preset` for after the phrase it plays now; False when no jam runs."""
        session = self._session
        if session is None:
            return False
        try:
            current, wanted = resolve_model_path(session.preset), resolve_model_path(preset)
        except Exception:  # noqa: BLE001 - reported when that preset starts a jam
            current = wanted = None
        if current != wanted:
            log.warning("preset %s plays the model %s; this jam keeps %s until you stop and start again",
                        preset.name, wanted, current)
        session.set_preset(preset)
        return True

    # -- internals (lock held) -----------------------------------------------------------------

    def _stop_locked(self) -> None:
        # Cleared first so `poll` no longer reads a session that is going away.
        session, self._session = self._session, None
        (source, sink), self._ports = self._ports, None
        watcher, self._watcher = self._watcher, None
        try:
            if watcher is not None:
                watcher.stop()  # before the ports close, or it would reopen them
            if session is not None:
                session.stop()
        finally:
            for port in (sink, source):
                try:
                    port.close()
                except Exception:  # noqa: BLE001 - the port may be gone already
                    log.exception("could not close the port %s", getattr(port, "name", port))
            if session is not None:
                self._close_recorder_locked(session)
                events = session.events()
                metrics = session.metrics()
                self._post(MetricsUpdated(metrics, session.scheduler.stats(), metrics.preset))
                if events:
                    self._post(SessionEventsHappened(events))
            self._post(JamStopped())

    def _start_recorder_locked(self) -> None:
        from engine.midi.recorder import SessionRecorder

        session = self._session
        try:
            recorder = SessionRecorder(self.recordings_dir, session.clock, meta=dict(self._meta))
            recorder.start()
        except Exception as exc:  # noqa: BLE001 - the jam goes on unrecorded, and the UI says so
            log.error("could not record to %s: %s", self.recordings_dir, exc)
            self._post(RecordingFailed(str(exc)))
            return
        self._recorder = recorder
        session.set_recorder(recorder)
        self._post(RecordingStarted(recorder.journal_path))

    def _close_recorder_locked(self, session) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        session.set_recorder(None)
        m = session.metrics()
        timings = {"response_ms_p50": m.response_latency_ms_p50, "response_ms_p99": m.response_latency_ms_p99,
                   "rtf": m.rtf, "send_lateness_ms_p99": m.lateness_ms_p99, "dropped_onsets": m.dropped_onsets}
        try:
            paths = recorder.close(timings={k: v for k, v in timings.items() if math.isfinite(v)})
        except Exception as exc:  # noqa: BLE001 - its journal stays behind for `recover`
            log.exception("could not save the recording")
            self._post(RecordingFailed(str(exc)))
            return
        self.saved.append(paths.midi_path)
        self._post(RecordingSaved(paths.midi_path))
