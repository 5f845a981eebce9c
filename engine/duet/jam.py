"""`Jam`: one jam's whole lifecycle, the one both faces drive (`jamtui jam --headless`, the
console, the bench): the preset's model and styles, the ports, the session, the port watcher and
the recorder, started and stopped in the right order, ending in silence; another model or style
loaded in the background mid-jam; the AI muted, the turn handed over, what was heard lately."""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.clock import Clock, FakeClock, MonotonicClock
from engine.duet.heard import HeardNotes, RecentNotes
from engine.duet.mute import MutableOutput
from engine.duet.report import SessionEvent, SessionMetrics
from engine.duet.session import Session
from engine.midi.ports import VIRTUAL_IN, VIRTUAL_OUT, PortOpener, open_ports
from engine.midi.recorder import SessionRecorder
from engine.midi.scheduler import SchedulerStats
from engine.midi.watch import PortWatcher
from engine.model.adapters import AdapterWeights, adapter_weights
from engine.model.cache import LoadedModel, ModelCache
from engine.presets.schema import Mode, Preset, PresetError, resolve_adapters, resolve_model_path
from engine.realtime import quiet_the_interpreter

log = logging.getLogger(__name__)
ModelKey = tuple[Path, AdapterWeights]  # a checkpoint and the adapters merged into it


def model_key(preset: Preset) -> ModelKey:
    """The model `preset` plays: its checkpoint and its adapters with their weights. Raises
    PresetError for a path or style that does not exist."""
    return resolve_model_path(preset), adapter_weights(resolve_adapters(preset))


@dataclass(frozen=True)
class JamSummary:
    """What a stopped jam leaves: its last metrics and events, the recording, what broke it."""

    metrics: SessionMetrics | None
    output: SchedulerStats | None
    events: list[SessionEvent] = field(default_factory=list)
    recording: Path | None = None  # the saved MIDI file
    recording_error: str | None = None  # the recording could not be saved (its journal stays for `recover`)
    error: BaseException | None = None  # what stopped the session, if a thread of it died


class Jam:
    """A jam on `input_spec` -> `output_spec` (port specs: see `engine.midi.ports`) with `preset`.

    `load_model` (blocking; the console calls it in a worker) and `start` may be called from
    any one thread at a time; `stop` is safe to repeat. While it runs, `set_mode`,
    `set_preset`, `panic`, `set_ai_muted`, `hand_over`, `metrics`, `output_stats`, `events`,
    `recent_notes` and `record` are safe from any thread. The clock is injected: on a `FakeClock` the music runs on no thread and the caller
    drives it with `advance` (a model switched to mid-jam still loads on a thread of its own:
    `wait_for_model` waits for it).
    """

    def __init__(self, preset: Preset, *, input_spec: str = f"virtual:{VIRTUAL_IN}",
                 output_spec: str = f"virtual:{VIRTUAL_OUT}", api: str | None = None, clock: Clock | None = None,
                 port_opener: PortOpener | None = None, models: ModelCache | None = None,
                 recordings_dir: Path | None = None, on_event: Callable[[SessionEvent], None] | None = None,
                 seed: int = 0) -> None:
        self._preset = preset  # as started; the session's own changes with set_preset
        self.input_spec, self.output_spec = input_spec, output_spec
        self.clock = clock or MonotonicClock()
        self.live = not isinstance(self.clock, FakeClock)
        self.recordings_dir = Path(recordings_dir) if recordings_dir is not None else None
        self._open = port_opener or (lambda i, o, clock: open_ports(i, o, api=api, clock=clock))
        self._models = models or ModelCache()
        self._on_event = on_event
        self._seed = seed
        self._lock = threading.Lock()  # start, stop and recording changes, one at a time
        self._loaded: LoadedModel | None = None  # the model playing (or taking over at the next chunk)
        self._switch_lock = threading.Lock()  # the model wanted, and the thread loading it
        self._wanted: ModelKey | None = None
        self._loader: threading.Thread | None = None
        self._settled = threading.Event()  # no model is loading in the background
        self._settled.set()
        self._session: Session | None = None
        self._ports: tuple[Any, Any] | None = None
        self._voice: MutableOutput | None = None  # the AI's output, with its mute
        self._heard: HeardNotes | None = None  # the session's recorder: what was heard, passed on
        self._watcher: PortWatcher | None = None
        self._recorder: SessionRecorder | None = None
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------------------------

    def load_model(self, on_loading: Callable[[Path], None] | None = None) -> LoadedModel:
        """The preset's model with its adapters merged (loaded once per checkpoint and adapters
        by the model cache). Raises PresetError (a model path or style that does not exist),
        CheckpointError (AdapterError for an adapter) or DeviceError."""
        if self._loaded is None:
            path, adapters = model_key(self._preset)
            self._loaded = self._models.get(path, adapters, on_loading=on_loading)
        return self._loaded

    def start(self, *, record: bool = False) -> bool:
        """Load the model if needed, open the ports, start the session (recording from its
        first note with `record`) and the watcher that reopens a port that comes back. False
        if `stop` came first (a quit while the model loaded). On any failure everything
        opened is closed again and the error is raised."""
        loaded = self.load_model()
        with self._lock:
            if self._stopped:
                return False
            if self._session is not None:
                raise RuntimeError("a Jam runs once; make a new one")
            source, sink = self._open(self.input_spec, self.output_spec, self.clock)
            self._ports = (source, sink)
            try:
                voice = self._voice = MutableOutput(sink)
                session = self._session = Session(source, voice, loaded.model, loaded.tokenizer, self._preset,
                                                  clock=self.clock, on_event=self._on_event, seed=self._seed)
                self._heard = HeardNotes(ai_heard=lambda: voice.heard_last, origin_ns=lambda: session.start_ns)
                session.set_recorder(self._heard)
                if record:
                    self._start_recorder_locked()
                if self.live:
                    quiet_the_interpreter()  # no full garbage collection in the middle of a phrase
                self._session.start(live=self.live)
                if self.live:
                    self._watcher = PortWatcher([source, sink])
                    self._watcher.start()
            except BaseException:
                self._stop_locked()
                raise
        return True

    def stop(self) -> JamSummary:
        """Stop in silence, in order: the watcher (or it would reopen the ports), the session
        (pending offs, all notes off), the ports, then the recording is saved."""
        with self._lock:
            return self._stop_locked()

    def advance(self, until_s: float, *, pump: Callable[[int], Any] | None = None, step_s: float = 0.01) -> None:
        """On a `FakeClock`: play until `until_s` session seconds (see `Session.run_simulated`)."""
        self._running_session().run_simulated(until_s, pump=pump, step_s=step_s)

    # -- while it runs (any thread) --------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._session is not None

    @property
    def error(self) -> BaseException | None:
        """What stopped the session by itself (a thread of it died); None while all is well."""
        session = self._session
        return session.error if session is not None else None

    @property
    def preset(self) -> Preset:
        """The preset playing now (one set while a phrase plays waits for its end)."""
        session = self._session
        return session.preset if session is not None else self._preset

    @property
    def mode(self) -> str:
        session = self._session
        return session.mode if session is not None else self._preset.mode

    @property
    def model(self) -> LoadedModel | None:
        """The model playing, or taking over from the next chunk (None before `load_model`)."""
        return self._loaded

    @property
    def port_names(self) -> tuple[str, str]:
        """(input, output) as opened, or the specs before the jam starts."""
        ports = self._ports
        return (ports[0].name, ports[1].name) if ports is not None else (self.input_spec, self.output_spec)

    @property
    def performer_done(self) -> bool:
        """Whether the performer is a MIDI-file player that has played its whole file (never
        for a port: a player is told apart by its `done`)."""
        ports = self._ports
        return ports is not None and getattr(ports[0], "done", False) is True

    @property
    def recording(self) -> Path | None:
        """The journal being written while recording, else None."""
        recorder = self._recorder
        return recorder.journal_path if recorder is not None else None

    def set_mode(self, mode: str) -> None:
        self._running_session().set_mode(mode)

    def set_preset(self, preset: Preset) -> bool:
        """Play `preset` once the phrase being played ends. When it plays another model or other
        adapters (another style), those load in the background (the model cache) while the AI
        plays on, and take over between two chunks once ready (`wait_for_model`). False when its
        model or a style cannot be found: the rest of the preset plays on the model loaded."""
        session = self._running_session()
        try:
            wanted = model_key(preset)
        except PresetError as exc:
            log.warning("%s; the jam keeps %s", exc, self._loaded.label if self._loaded else "its model")
            session.set_preset(preset)
            return False
        session.set_preset(preset)
        self._switch_to(wanted)
        return True

    def wait_for_model(self, timeout_s: float | None = None) -> bool:
        """Wait until no model is loading in the background (one asked for by `set_preset` has
        been handed to the session, or failed); False if `timeout_s` passed first."""
        return self._settled.wait(timeout_s)

    def panic(self) -> None:
        self._running_session().panic()
        log.warning("panic: all notes and sound off on every channel")

    @property
    def ai_muted(self) -> bool:
        voice = self._voice
        return voice is not None and voice.muted

    def set_ai_muted(self, on: bool) -> None:
        """Muted, the AI's new notes do not sound nor get recorded while the jam plays on (its
        model keeps writing, so it comes back in time); notes sounding end at their own offs."""
        self._running_session()
        self._voice.set_muted(on)
        log.debug("AI %s", "muted" if on else "unmuted")

    def hand_over(self) -> bool:
        """Call-and-response: the AI answers the phrase played so far now (once no key is down),
        as the preset's hand-over key would have it. False in the other modes: nothing to hand over."""
        session = self._running_session()
        if session.mode is not Mode.CALL_AND_RESPONSE:
            return False
        session.remote.hand_over()
        return True

    def recent_notes(self, past_s: float = 10.0, *, listen: bool = True) -> RecentNotes:
        """Both players' notes of the last `past_s` as heard, the AI's written ahead of now (not
        sounded yet; none while muted) and, with `listen`, the performer's chord, key and tempo."""
        session = self._running_session()
        now_s = (self.clock.now_ns() - session.start_ns) / 1e9
        return self._heard.recent(now_s - past_s, now_s, session.remote.ai_notes(), ai_muted=self.ai_muted,
                                  listen=listen)

    def metrics(self) -> SessionMetrics:
        return self._running_session().metrics()

    def output_stats(self) -> SchedulerStats:
        return self._running_session().scheduler.stats()

    def events(self) -> list[SessionEvent]:
        """The session's events since the last call (oldest first)."""
        return self._running_session().events()

    def record(self, on: bool) -> Path | None:
        """Start recording both players (returns the journal being written) or save the
        recording (returns the MIDI file; None if none was running). Raises OSError when the
        recording cannot start or be saved; the jam plays on either way."""
        with self._lock:
            session = self._running_session()
            if on:
                if self._recorder is None:
                    self._start_recorder_locked()
                return self.recording
            saved, error = self._close_recorder_locked(session)
            if error is not None:
                raise OSError(error)
            return saved

    # -- switching model (any thread; the loading on its own) -----------------------------------

    def _switch_to(self, wanted: ModelKey) -> None:
        with self._switch_lock:
            self._wanted = wanted
            if self._loader is not None or self._playing() == wanted:
                return  # the loader takes the latest wish when its load ends
            self._settled.clear()
            self._loader = threading.Thread(target=self._load_wanted, name="jamtui-model-load", daemon=True)
            self._loader.start()

    def _playing(self) -> ModelKey | None:
        loaded = self._loaded
        return (loaded.path, loaded.adapters) if loaded is not None else None

    def _load_wanted(self) -> None:
        """The model thread: load what is wanted (the latest wish) and hand it to the session."""
        while True:
            with self._switch_lock:
                wanted = self._wanted
                if self._stopped or wanted is None or wanted == self._playing():
                    self._loader = None
                    self._settled.set()
                    return
            path, adapters = wanted
            try:
                loaded = self._models.get(path, adapters)
            except Exception as exc:  # noqa: BLE001 - a style that does not load: the AI plays on
                log.error("could not load %s: %s; the jam plays on with %s", path.name, exc, self._loaded.label)
                self._give_up(wanted)
                continue
            old = self._loaded
            if loaded.tokenizer is not old.tokenizer and loaded.tokenizer.to_dict() != old.tokenizer.to_dict():
                log.error("%s has another tokenizer than %s; this jam keeps %s until it starts again",
                          loaded.label, old.label, old.label)
                self._give_up(wanted)
                continue
            with self._lock:
                session = self._session
                if self._stopped or session is None:
                    continue
                self._loaded = loaded
                session.set_model(loaded.model, loaded.label)
            log.info("%s takes over from %s at the next chunk", loaded.label, old.label)

    def _give_up(self, wanted: ModelKey) -> None:
        with self._switch_lock:
            if self._wanted == wanted:
                self._wanted = None

    # -- internals (lock held) ------------------------------------------------------------------

    def _running_session(self) -> Session:
        session = self._session
        if session is None:
            raise RuntimeError("the jam is not running")
        return session

    def _start_recorder_locked(self) -> None:
        if self.recordings_dir is None:
            raise ValueError("no recordings directory was given to this jam")
        source, sink = self._ports
        recorder = SessionRecorder(self.recordings_dir, self.clock,
                                   meta={"in": source.name, "out": sink.name, "preset": self._preset.name,
                                         "mode": str(self.mode)})
        recorder.start()
        self._recorder = recorder
        self._heard.recorder = recorder

    def _close_recorder_locked(self, session: Session) -> tuple[Path | None, str | None]:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None, None
        self._heard.recorder = None
        m = session.metrics()
        timings = {"response_ms_p50": m.response_latency_ms_p50, "response_ms_p99": m.response_latency_ms_p99,
                   "rtf": m.rtf, "send_lateness_ms_p99": m.lateness_ms_p99, "dropped_onsets": m.dropped_onsets}
        # No answer yet leaves NaN, and no compute an infinite rtf: JSON has neither.
        timings = {k: v for k, v in timings.items() if math.isfinite(v)}
        try:
            return recorder.close(timings=timings).midi_path, None
        except Exception as exc:  # noqa: BLE001 - its journal stays behind for `recover`
            log.exception("could not save the recording")
            return None, str(exc)

    def _stop_locked(self) -> JamSummary:
        if self._stopped:
            return JamSummary(None, None)
        self._stopped = True
        session, ports, watcher = self._session, self._ports, self._watcher
        self._watcher = None
        try:
            if watcher is not None:
                watcher.stop()  # before the ports close, or it would reopen them
            if session is not None:
                session.stop()
        finally:
            for port in reversed(ports or ()):
                try:
                    port.close()
                except Exception:  # noqa: BLE001 - the port may be gone already
                    log.exception("could not close the port %s", getattr(port, "name", port))
        if session is None:
            return JamSummary(None, None)
        saved, recording_error = self._close_recorder_locked(session)
        summary = JamSummary(session.metrics(), session.scheduler.stats(), session.events(), saved, recording_error,
                             session.error)
        self._session = None
        return summary
