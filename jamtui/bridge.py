"""The one place engine state becomes Textual messages: the `Jam`'s lifecycle, metrics and
events, the model it plays, recordings and port scans."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from engine.clock import Clock, MonotonicClock
from engine.midi.base import PortError
from engine.midi.ports import PortOpener
from engine.midi.system import PortList, list_ports, platform_hint
from engine.model.cache import LoadedModel, ModelCache
from engine.presets.schema import Preset, resolve_adapters, resolve_model_path
from engine.style.corpus import CorpusError, add_files
from engine.user_dirs import recordings_dir
from jamtui.kept_ports import KeptPorts
from jamtui.messages import (
    EngineFailed,
    JamStarted,
    JamStopped,
    MetricsUpdated,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoadStarted,
    NotesHeard,
    PerformerFinished,
    PortScanFailed,
    PortsScanned,
    RecordingFailed,
    RecordingSaved,
    RecordingsRecovered,
    RecordingStarted,
    SessionEventsHappened,
    TakeKept,
)

log = logging.getLogger(__name__)

# checkpoint directory [, ((adapter directory, weight), ...) when the preset has styles] -> (live model, tokenizer)
ModelLoader = Callable[..., tuple[Any, Any]]
PortsProvider = Callable[[], PortList]
ClockFactory = Callable[[], Clock]
POLL_INTERVAL_S = 0.1  # metrics, events and the piano roll's notes: ten readings a second, never one per note
HEARD_PAST_S = 8.0  # the notes read per poll: the last this-many seconds (the roll shows some of them)
LISTEN_EVERY = 5  # chord, key and tempo every this-many polls (twice a second): the tempo estimate costs ms


def default_recordings_dir() -> Path:
    return recordings_dir()


def default_ports_provider(api: str | None = None) -> PortsProvider:
    return lambda: list_ports(api)


class EngineBridge:
    """Drives the console's `engine.duet.jam.Jam` and reports what happened as messages posted
    to `target`.

    `scan`, `recover_recordings`, `prepare_model`, `start`, `stop`, `set_recording` and
    `keep_take` block:
    call them from thread workers (`shutdown` too, or from the app thread when quitting).
    `poll`, `panic`, `set_mode`, `set_preset`, `set_ai_muted` and `hand_over` never wait for
    the model: they run on the app thread. Lifecycle changes are serialised by one lock; model
    loads are not under it, so a quit never waits for a model to load.
    """

    def __init__(self, *, port_opener: PortOpener, ports_provider: PortsProvider, model_loader: ModelLoader | None,
                 recordings_dir: Path, clock_factory: ClockFactory = MonotonicClock) -> None:
        self.port_opener = port_opener
        # Stop then start on the same ports keeps them open: JACK keeps what was connected to them.
        self._kept_ports = KeptPorts(lambda i, o, clock: self.port_opener(i, o, clock))
        self.ports_provider = ports_provider
        self.recordings_dir = Path(recordings_dir)
        self.clock_factory = clock_factory  # a FakeClock in tests: the jam is then driven by `Jam.advance`
        self._models = ModelCache(model_loader)
        self._target = None
        self._lock = threading.Lock()
        self._jam = None
        self._record_armed = False
        self._failed = None
        self._performer_done = None  # the jam whose .mid performer was said to have ended
        self._polls = 0
        self._closed = False
        self.saved: list[Path] = []  # every recording saved, for a summary once the screen is gone

    def attach(self, target) -> None:
        """Post messages to `target` (a Textual message pump) and poll the jam on its timer."""
        self._target = target
        target.set_interval(POLL_INTERVAL_S, self.poll)

    def _post(self, message) -> None:
        # post_message is thread-safe and never waits for the app (call_from_thread does).
        if self._target is not None:
            self._target.post_message(message)

    @property
    def jam(self):
        """The running `engine.duet.jam.Jam`, or None."""
        return self._jam

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

    def prepare_model(self, preset: Preset) -> LoadedModel | None:
        """The model the preset names with its adapters (styles) merged, loaded once and kept;
        None (and a `ModelLoadFailed`) if it cannot be loaded."""
        try:
            path, adapters = resolve_model_path(preset), resolve_adapters(preset)
        except Exception as exc:  # noqa: BLE001 - a preset naming a missing model or style is reported
            self._post(ModelLoadFailed(preset.model.path, str(exc)))
            return None
        if self._models.cached(path, adapters) is not None:
            return self._models.get(path, adapters)
        try:
            loaded = self._models.get(path, adapters, on_loading=lambda p: self._post(ModelLoadStarted(p.name)))
        except Exception as exc:  # noqa: BLE001 - the console stays up and says why
            log.error("could not load the model %s: %s", path, exc)
            self._post(ModelLoadFailed(path.name, str(exc)))
            return None
        if loaded.load_s > 0:
            log.info("model %s ready (%s) in %.1f s", loaded.label, loaded.device, loaded.load_s)
            self._post(ModelLoaded(loaded.label, loaded.load_s, loaded.device))
        return loaded

    def start(self, input_spec: str, output_spec: str, preset: Preset) -> None:
        """Load the preset's model if needed, open the ports and start the jam."""
        from engine.duet.jam import Jam  # brings torch: the console starts without it

        if self.prepare_model(preset) is None:  # outside the lifecycle lock: a quit must not wait for it
            self._post(EngineFailed("no model to play with (see the log)"))
            self._post(JamStopped())
            return
        with self._lock:
            if self._jam is not None or self._closed:
                return
            jam = Jam(preset, input_spec=input_spec, output_spec=output_spec, clock=self.clock_factory(),
                      port_opener=self._kept_ports.open, models=self._models, recordings_dir=self.recordings_dir)
            try:
                jam.start()
            except Exception as exc:  # noqa: BLE001 - a missing port or file is reported, not fatal
                log.error("could not start: %s", exc)
                self._post(EngineFailed(str(exc)))
                self._post(JamStopped())
                return
            self._jam = jam
            if self._record_armed:
                self._start_recording_locked()
            self._post(JamStarted(*jam.port_names, preset.name, jam.mode))

    def stop(self) -> None:
        """Stop the jam in silence and save the recording; the ports stay open for the next
        start on them (`KeptPorts`) until `shutdown`. Safe to repeat."""
        with self._lock:
            self._stop_locked()

    def shutdown(self) -> None:
        """Stop for good: a start still queued in a worker will not play after this."""
        with self._lock:
            self._closed = True
            self._stop_locked()
            self._kept_ports.close()

    def set_recording(self, on: bool) -> None:
        """Arm or disarm recording; while the jam runs, start or save the recording now."""
        with self._lock:
            self._record_armed = on
            if self._jam is None:
                return
            if on and self._jam.recording is None:
                self._start_recording_locked()
            elif not on and self._jam.recording is not None:
                try:
                    saved = self._jam.record(False)
                except OSError as exc:
                    self._post(RecordingFailed(str(exc)))
                    return
                self._saved(saved)

    def last_recording(self) -> Path | None:
        """The take saved last: this console's, else the newest MIDI file in the recordings dir."""
        if self.saved:
            return self.saved[-1]
        takes = sorted(self.recordings_dir.glob("*.mid"), key=lambda p: p.stat().st_mtime)
        return takes[-1] if takes else None

    def keep_take(self, corpus: str) -> None:
        """Add the last recording to the corpus `corpus` (made if new), and say how it went."""
        path = self.last_recording()
        if path is None:
            self._post(TakeKept(None, corpus, False, "no take recorded yet (r records the jam)"))
            return
        try:
            result = add_files(corpus, [path])
        except (CorpusError, OSError) as exc:
            self._post(TakeKept(path, corpus, False, str(exc)))
            return
        if result.added:
            self._post(TakeKept(path, corpus, True))
        else:
            reason = result.skipped[0][1] if result.skipped else "nothing in it to keep"
            self._post(TakeKept(path, corpus, False, reason))

    # -- app thread ----------------------------------------------------------------------------

    def poll(self) -> None:
        """Read the jam's metrics, events and recent notes (none waits for the model) and post them."""
        jam = self._jam
        if jam is None:
            return
        try:
            events, metrics, output = jam.events(), jam.metrics(), jam.output_stats()
            recent = jam.recent_notes(HEARD_PAST_S, listen=self._polls % LISTEN_EVERY == 0)
        except RuntimeError:  # stopped between the check and the reads
            return
        self._polls += 1
        self._post(MetricsUpdated(metrics, output, metrics.preset))
        self._post(NotesHeard(recent))
        if events:
            self._post(SessionEventsHappened(events))
        if self._performer_done is not jam and jam.performer_done:
            self._performer_done = jam
            self._post(PerformerFinished())
        # A dead control loop or output thread: the session stopped itself and says why.
        error = jam.error
        if error is None:
            return
        failed = next((e for e in events if e.kind == "failed"), None)
        where = failed.detail.get("where") if failed is not None else None
        failure = f"{'output' if where == 'output' else 'session'} stopped: {error}"
        if self._failed is not jam:
            self._failed = jam
            self._post(EngineFailed(failure))
            self._target.run_worker(self.stop, thread=True, group="engine")

    def panic(self) -> bool:
        jam = self._jam
        if jam is None:
            return False
        jam.panic()
        return True

    def set_mode(self, mode: str) -> bool:
        jam = self._jam
        if jam is None:
            return False
        jam.set_mode(mode)
        return True

    def set_ai_muted(self, on: bool) -> bool:
        """Mute or unmute the AI (the jam plays on); False when no jam runs."""
        jam = self._jam
        if jam is None:
            return False
        jam.set_ai_muted(on)
        return True

    def hand_over(self) -> bool:
        """Call-and-response: the AI answers now; False when no jam runs or it is not taking turns."""
        jam = self._jam
        return jam is not None and jam.hand_over()

    def set_preset(self, preset: Preset) -> bool:
        """Hand the jam `preset` for after the phrase it plays now; False when no jam runs. A
        preset with another model or style loads in the jam's background and takes over between
        two chunks (a `model_changed` event says when)."""
        jam = self._jam
        if jam is None:
            return False
        jam.set_preset(preset)  # logs when its model or style cannot be found
        return True

    # -- internals (lock held) -----------------------------------------------------------------

    def _stop_locked(self) -> None:
        # Cleared first so `poll` no longer reads a jam that is going away.
        jam, self._jam = self._jam, None
        if jam is None:
            return
        summary = jam.stop()
        if summary.error is not None:  # a port that failed is opened afresh next time
            self._kept_ports.close()
        if summary.recording_error is not None:
            self._post(RecordingFailed(summary.recording_error))
        self._saved(summary.recording)
        if summary.metrics is not None:
            self._post(MetricsUpdated(summary.metrics, summary.output, summary.metrics.preset))
        if summary.events:
            self._post(SessionEventsHappened(summary.events))
        self._post(JamStopped())

    def _start_recording_locked(self) -> None:
        try:
            journal = self._jam.record(True)
        except Exception as exc:  # noqa: BLE001 - the jam goes on unrecorded, and the UI says so
            log.error("could not record to %s: %s", self.recordings_dir, exc)
            self._post(RecordingFailed(str(exc)))
            return
        self._post(RecordingStarted(journal))

    def _saved(self, path: Path | None) -> None:
        if path is not None:
            self.saved.append(path)
            self._post(RecordingSaved(path))
