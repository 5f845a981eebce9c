"""The jam screen: pick ports, start and stop the duet with the model, switch mode and preset,
panic, record, keep the last take, mute the AI, hand the turn over, tap a tempo, and watch both
players on the piano roll, the meters and the session's events."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import PurePath

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Footer, Header, Input

from engine.duet.tap_tempo import TapTempo
from engine.presets.schema import MODES, Preset
from jamtui import messages as msg
from jamtui.bridge import EngineBridge
from jamtui.logs import LogCapture
from jamtui.hotkeys import live_keys, resolve_keymap
from jamtui.preset_steps import PresetSteps
from jamtui.screens.help import key_rows
from jamtui.screens.live_settings import LiveSettings
from jamtui.screens.panels import Panels
from jamtui.widgets.eventlog import EventLog
from jamtui.widgets.meters import Meters
from jamtui.widgets.piano_roll import LEGEND, PianoRoll
from jamtui.widgets.ports import PortsPanel
from jamtui.widgets.status import RUNNING, STARTING, STOPPED, STOPPING, JamStatus, Status

__all__ = ["JamScreen", "RUNNING", "STARTING", "STOPPED", "STOPPING"]
log = logging.getLogger(__name__)
DEFAULT_CORPUS = "mine"  # where a take goes when the preset plays no style
_TOAST_S = 4.0  # a toast only repeats a log line, so it need not stay long
_TURN_BY_EVENT = {"ai_phrase_started": "AI answering", "ai_phrase_ended": "your turn", "ai_yielded": "your turn",
                  "panicked": "your turn"}


class JamScreen(LiveSettings, Panels, Screen):
    """Commands go down to the app's `EngineBridge`; what happened comes back as messages."""

    # The footer shows a group as its keys and one label: "m 1 2 3 Mode", "[ ] Preset"; `show=False`
    # ones are on the help screen (`?`) and in the command palette (ctrl+p) only.
    _MODE, _PRESET = Binding.Group("Mode"), Binding.Group("Preset")
    BINDINGS = [
        Binding("space", "start_stop", "Start/stop", id="start_stop"),
        Binding("m", "next_mode", "Next mode", id="mode", group=_MODE),
        Binding("1", "set_mode('call-and-response')", "Call and response", id="mode_call_and_response", group=_MODE),
        Binding("2", "set_mode('accompany')", "Accompany", id="mode_accompany", group=_MODE),
        Binding("3", "set_mode('continuous')", "Continuous", id="mode_continuous", group=_MODE),
        Binding("left_square_bracket", "step_preset(-1)", "Previous preset", id="prev_preset", group=_PRESET),
        Binding("right_square_bracket", "step_preset(1)", "Next preset", id="next_preset", group=_PRESET),
        Binding("p", "panic", "Panic", id="panic"),
        Binding("r", "record", "Record", id="record"),
        Binding("a", "toggle_ai", "AI on/off", id="ai_mute", show=False),
        Binding("g", "hand_over", "Hand over now (go)", id="hand_over", show=False),
        Binding("t", "tap_tempo", "Tap tempo", id="tap_tempo", show=False),
        Binding("T", "follow_tempo", "Tempo: follow me", id="tempo_follow", show=False),
        Binding("k", "keep_take", "Keep take", id="keep_take", show=False),
        Binding("s", "rescan", "Rescan", id="rescan", show=False),
        Binding("less_than_sign", "nudge('dial', -1)", "Dial toward respond", id="dial_down", show=False),
        Binding("greater_than_sign", "nudge('dial', 1)", "Dial toward imitate", id="dial_up", show=False),
        Binding("minus", "nudge('temperature', -1)", "Temperature down", id="temperature_down", show=False),
        Binding("plus,equals_sign", "nudge('temperature', 1)", "Temperature up", id="temperature_up",
                show=False),
        Binding("f2", "presets", "Presets", id="presets", show=False),
        Binding("f3", "styles", "Styles", id="styles", show=False),
        Binding("f4", "train", "Train a style", id="train", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.logs: LogCapture | None = None
        self._quit_timer_set = False
        self.preset_steps = PresetSteps(self.app.preset, user_dir=self.app.user_presets_dir)
        self.status = Status(mode=self.app.preset.mode, preset=self.app.preset.name)
        self.keymap: dict[str, str] = {}  # binding id -> keys, as the preset in use remaps them
        self.taps = TapTempo()
        self.tap_clock = time.monotonic  # seconds; a test may hand in another clock

    @property
    def bridge(self) -> EngineBridge:
        return self.app.bridge

    # What tests and the app read; `status` holds the rest.
    @property
    def state(self) -> str:
        return self.status.state

    @property
    def mode(self) -> str:
        return self.status.mode

    @property
    def recording_now(self) -> bool:
        return self.status.recording_now

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield PortsPanel(id="ports")
            with Vertical(id="right"):
                yield JamStatus(id="status")
                yield Meters(id="meters")
                roll = PianoRoll(id="roll")
                roll.border_title = LEGEND
                yield roll
                log_panel = EventLog(id="log")
                log_panel.border_title = "log"
                yield log_panel
        # The essentials fit at 80 columns with Quit and Help last; the rest (and ctrl+p, the
        # command palette) are on the help screen.
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.logs = LogCapture(self)
        self.logs.install()
        self.bridge.attach(self)
        self._update()
        try:
            self.preset_steps.refresh()
        except Exception as exc:  # noqa: BLE001 - the jam goes on with the preset it has
            log.warning("could not list presets: %s", exc)
        self._apply_hotkeys(self.app.preset)
        if self.app.record:
            self._update(recording=True)
            self.bridge.set_recording(True)  # no jam yet: only arms it
        self.prepare_model(self.app.preset)
        self.scan_ports()
        self.recover_recordings()
        self.query_one("#inputs").focus()
        if self.app.autostart:
            self._begin(self.app.input_spec, self.app.output_spec)

    def on_unmount(self) -> None:
        if self.logs is not None:
            self.logs.uninstall()

    # -- workers ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="scan")
    def scan_ports(self) -> None:
        self.bridge.scan()

    @work(thread=True, group="model")
    def prepare_model(self, preset: Preset) -> None:
        self.bridge.prepare_model(preset)

    @work(thread=True, group="engine")
    def recover_recordings(self) -> None:
        self.bridge.recover_recordings()

    @work(thread=True, group="engine")
    def _start(self, input_spec: str, output_spec: str, preset: Preset) -> None:
        self.bridge.start(input_spec, output_spec, preset)

    @work(thread=True, group="engine")
    def _stop(self) -> None:
        self.bridge.stop()

    @work(thread=True, group="engine")
    def _set_recording(self, on: bool) -> None:
        self.bridge.set_recording(on)

    @work(thread=True, group="corpus")
    def _keep_take(self, corpus: str) -> None:
        self.bridge.keep_take(corpus)

    # -- actions ---------------------------------------------------------------------------

    def action_start_stop(self) -> None:
        if self.state == STOPPED:
            try:
                input_spec, output_spec = self.query_one(PortsPanel).selection()
            except ValueError as exc:
                self._tell(str(exc), severity="warning")
                return
            self._begin(input_spec, output_spec)
        elif self.state == RUNNING:
            self._update(state=STOPPING)
            self._stop()

    def _begin(self, input_spec: str, output_spec: str) -> None:
        self._update(state=STARTING, problem="", next_preset="")
        # The mode chosen while stopped wins over the preset's own.
        self._start(input_spec, output_spec, replace(self.preset_steps.current, mode=self.mode))

    def action_next_mode(self) -> None:
        self.action_set_mode(MODES[(MODES.index(self.mode) + 1) % len(MODES)] if self.mode in MODES else MODES[0])

    def action_set_mode(self, mode: str) -> None:
        if self.state == RUNNING:
            self.bridge.set_mode(mode)
        turn = "your turn" if mode == "call-and-response" and self.state == RUNNING else ""
        self._update(mode=mode, turn=turn)

    def action_step_preset(self, delta: int) -> None:
        preset, problems = self.preset_steps.step(delta)
        for problem in problems:
            log.warning("skipped a preset: %s", problem)
        if preset is None:
            self._tell("no other preset to switch to", severity="warning")
            return
        self.use_preset(preset)

    def use_preset(self, preset: Preset) -> None:
        """Play `preset` from now on: mid-jam after the phrase being played (a new style loads in
        the background), stopped at the next start."""
        self.preset_steps.current = preset
        self._apply_hotkeys(preset)
        self._update(told_bpm=preset.conditioning.tempo_bpm)  # a preset brings its own tempo, or none
        if self.state == RUNNING and self.bridge.set_preset(preset):
            if preset.name != self.status.preset:
                self._update(next_preset=preset.name)
            return
        self._update(preset=preset.name, mode=preset.mode, next_preset="")
        self.prepare_model(preset)  # ready before the next start

    def action_record(self) -> None:
        self._update(recording=not self.status.recording)
        self._set_recording(self.status.recording)

    def action_keep_take(self) -> None:
        """The last take goes into the corpus of the style playing (its first adapter's), else `mine`."""
        jam = self.bridge.jam
        preset = jam.preset if jam is not None else self.preset_steps.current
        adapters = preset.model.adapters
        self._keep_take(PurePath(adapters[0].path).name if adapters else DEFAULT_CORPUS)

    def action_panic(self) -> None:
        if not self.bridge.panic():
            self._tell("nothing is playing")

    def action_rescan(self) -> None:
        self.scan_ports()
        self.preset_steps.refresh()

    @on(Input.Submitted, "#midi-file")
    def _play_file(self) -> None:
        panel = self.query_one(PortsPanel)
        if not panel.path:  # Enter in an empty field never starts the jam on another input
            self._tell("type the path of a .mid file to play, then Enter", severity="warning")
            return
        if self.state == STOPPED:
            panel.choose_file()
            self.action_start_stop()

    def _apply_hotkeys(self, preset: Preset) -> None:
        keymap, problems = resolve_keymap([*self.BINDINGS, *self.app.BINDINGS], preset.hotkeys)
        for problem in problems:
            log.warning("preset %s: %s", preset.name, problem)
        self.keymap = keymap
        self.app.set_keymap(keymap)

    def live_bindings(self) -> list[tuple[Binding, str]]:
        """This screen's bindings and the app's, each with the keys it answers to now."""
        return live_keys([*self.BINDINGS, *self.app.BINDINGS], self.keymap)

    def key_rows(self) -> list[tuple[str, str, str]]:
        """(keys as shown, what it does, action id) per binding: the help screen's rows."""
        return key_rows(self.app, self.live_bindings())

    # -- what the bridge reports -----------------------------------------------------------

    def on_ports_scanned(self, message: msg.PortsScanned) -> None:
        panel = self.query_one(PortsPanel)
        panel.show_ports(message.ports.inputs, message.ports.outputs)
        if self.app.autostart:  # the ports a `jamtui jam` was given stay chosen for the next start
            panel.prefer(self.app.input_spec, self.app.output_spec)

    def on_port_scan_failed(self, message: msg.PortScanFailed) -> None:
        self.query_one(PortsPanel).show_error(message.error, message.hint)
        # libjack prints its failed probe straight onto the terminal, which Textual draws on too.
        self.refresh()

    def on_model_load_started(self, message: msg.ModelLoadStarted) -> None:
        self._update(model=message.name, model_state="loading")

    def on_model_loaded(self, message: msg.ModelLoaded) -> None:
        self._update(model=f"{message.name} · {message.device}", model_state="ready")

    def on_model_load_failed(self, message: msg.ModelLoadFailed) -> None:
        self._update(model=message.name, model_state="failed", problem=message.error)

    def on_jam_started(self, message: msg.JamStarted) -> None:
        if self.app.quit_after_s and not self._quit_timer_set:
            self._quit_timer_set = True
            self.set_timer(self.app.quit_after_s, self.app.action_quit)
        turn = "your turn" if message.mode == "call-and-response" else ""
        self.query_one(Meters).started()
        self.query_one(PianoRoll).show(None)
        self.query_one(EventLog).write_note(
            f"jam started: {message.input_name} → {message.output_name}, preset {message.preset_name}, "
            f"{message.mode}", "bold green")
        self._update(state=RUNNING, route=f"{message.input_name} → {message.output_name}", mode=message.mode,
                     preset=message.preset_name, turn=turn, ai_muted=False,
                     told_bpm=self.preset_steps.current.conditioning.tempo_bpm)

    def on_jam_stopped(self, message: msg.JamStopped) -> None:
        self.query_one(Meters).stopped()
        if self.state in (RUNNING, STOPPING):  # not a start that failed: that one logged why
            self.query_one(EventLog).write_note("jam stopped; the output is silent", "bold")
        self._update(state=STOPPED, recording_now=False, turn="", next_preset="", ai_muted=False, chord="", key="",
                     tempo_bpm=None)
        if self.app.focused is None:  # focus left with the disabled ports panel; bring it back
            self.query_one("#inputs").focus()

    def on_performer_finished(self, message: msg.PerformerFinished) -> None:
        self.query_one(EventLog).write_note("the .mid performer has played to its end; the jam goes on "
                                            "(space stops it)", "bold")

    def on_metrics_updated(self, message: msg.MetricsUpdated) -> None:
        self.query_one(Meters).show(message.metrics, message.output)
        changes = {"mode": message.metrics.mode, "preset": message.preset_name}
        if message.preset_name == self.status.next_preset:
            changes["next_preset"] = ""
        if message.metrics.mode != "call-and-response":
            changes["turn"] = ""
        elif not self.status.turn and self.state == RUNNING:
            changes["turn"] = "your turn"
        if any(getattr(self.status, k) != v for k, v in changes.items()):
            self._update(**changes)

    def on_notes_heard(self, message: msg.NotesHeard) -> None:
        recent = message.recent
        self.query_one(PianoRoll).show(recent)
        listening = recent.listening
        if listening is None:  # chord, key and tempo come with some polls only
            return
        changes = {"chord": listening.chord_name or "", "key": recent.key.name if recent.key is not None else "",
                   "tempo_bpm": listening.tempo_bpm}
        if changes["tempo_bpm"] is not None and self.status.tempo_bpm is not None \
                and abs(changes["tempo_bpm"] - self.status.tempo_bpm) < 1:
            del changes["tempo_bpm"]  # no redraw for a beat that wavers by a fraction
        if any(getattr(self.status, k) != v for k, v in changes.items()):
            self._update(**changes)

    def on_session_events_happened(self, message: msg.SessionEventsHappened) -> None:
        log_panel = self.query_one(EventLog)
        for event in message.events:
            log_panel.write_event(event)
            if event.kind in _TURN_BY_EVENT:
                self._update(turn=_TURN_BY_EVENT[event.kind])

    def on_engine_failed(self, message: msg.EngineFailed) -> None:
        self._update(problem=message.error)
        self._tell(message.error, title="Jam stopped", severity="error")

    def on_recording_started(self, message: msg.RecordingStarted) -> None:
        self._update(recording_now=True)

    def on_recording_saved(self, message: msg.RecordingSaved) -> None:
        self._update(recording_now=False)
        self._tell(f"saved {message.midi_path}", title="Recording")

    def on_recording_failed(self, message: msg.RecordingFailed) -> None:
        self._update(recording_now=False)
        self._tell(message.error, title="Not recording", severity="error")

    def on_take_kept(self, message: msg.TakeKept) -> None:
        if message.kept:
            self._tell(f"kept {message.midi_path.name} in corpus {message.corpus}", title="Take")
        else:
            take = f"{message.midi_path.name} " if message.midi_path is not None else ""
            self._tell(f"{take}not kept in corpus {message.corpus}: {message.reason}", title="Take",
                       severity="warning")

    def on_recordings_recovered(self, message: msg.RecordingsRecovered) -> None:
        names = ", ".join(path.name for path in message.midi_paths)
        self._tell(f"recovered {len(message.midi_paths)} interrupted recording(s): {names}", title="Recordings")

    def on_log_recorded(self, message: msg.LogRecorded) -> None:
        self.query_one(EventLog).write_record(message.record, message.text)

    # -- drawing ---------------------------------------------------------------------------

    def _tell(self, text: str, *, title: str = "", severity: SeverityLevel = "information") -> None:
        """Say it in the log, where it stays, and as a short toast over the ports panel (app.tcss),
        clear of the log."""
        style = {"error": "red", "warning": "yellow"}.get(severity, "")
        self.query_one(EventLog).write_note(f"{title}: {text}" if title else text, style)
        self.notify(text, title=title, severity=severity, timeout=_TOAST_S)

    def _update(self, **changes) -> None:
        self.status = replace(self.status, **changes)
        self.query_one(JamStatus).status = self.status
        # Ports cannot change under a running jam; stop first.
        self.query_one(PortsPanel).disabled = self.status.state != STOPPED
