"""The jam screen: pick ports, start and stop the MIDI path, record, watch meters and the log."""
from __future__ import annotations

import logging

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, RichLog, Static

from jamtui import messages as msg
from jamtui.bridge import EngineBridge, LogCapture
from jamtui.widgets.meters import Meters
from jamtui.widgets.ports import PortsPanel

STOPPED, STARTING, RUNNING, STOPPING = "stopped", "starting", "running", "stopping"


class JamScreen(Screen):
    """Commands go down to the app's `EngineBridge`; what happened comes back as messages."""

    BINDINGS = [
        Binding("space", "start_stop", "Start/stop", id="start_stop"),
        Binding("r", "record", "Record", id="record"),
        Binding("p", "panic", "Panic", id="panic"),
        Binding("s", "rescan", "Rescan ports", id="rescan"),
    ]

    state = reactive(STOPPED, init=False)
    recording = reactive(False, init=False)  # armed: records whenever the MIDI path runs
    recording_now = reactive(False, init=False)
    route = reactive("", init=False)
    problem = reactive("", init=False)  # the last engine error, shown until the next start

    def __init__(self) -> None:
        super().__init__()
        self.logs: LogCapture | None = None

    @property
    def bridge(self) -> EngineBridge:
        return self.app.bridge

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield PortsPanel(id="ports")
            with Vertical(id="right"):
                yield Static(id="status")
                meters = Meters(id="meters")
                meters.border_title = "meters"
                yield meters
                log_panel = RichLog(id="log", wrap=True, markup=False, max_lines=2000)
                log_panel.border_title = "log"
                yield log_panel
        yield Footer()

    def on_mount(self) -> None:
        self.logs = LogCapture(self)
        self.logs.install()
        self.bridge.attach(self)
        self._show_status()
        self.scan_ports()
        self.recover_recordings()
        self.query_one("#inputs").focus()

    def on_unmount(self) -> None:
        if self.logs is not None:
            self.logs.uninstall()

    # -- workers ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="scan")
    def scan_ports(self) -> None:
        self.bridge.scan()

    @work(thread=True, group="engine")
    def recover_recordings(self) -> None:
        self.bridge.recover_recordings()

    @work(thread=True, group="engine")
    def _start(self, input_spec: str, output_spec: str) -> None:
        self.bridge.start(input_spec, output_spec)

    @work(thread=True, group="engine")
    def _stop(self) -> None:
        self.bridge.stop()

    @work(thread=True, group="engine")
    def _set_recording(self, on: bool) -> None:
        self.bridge.set_recording(on)

    # -- actions ---------------------------------------------------------------------------

    def action_start_stop(self) -> None:
        if self.state == STOPPED:
            try:
                input_spec, output_spec = self.query_one(PortsPanel).selection()
            except ValueError as exc:
                self.notify(str(exc), severity="warning")
                return
            self.problem = ""
            self.state = STARTING
            self._start(input_spec, output_spec)
        elif self.state == RUNNING:
            self.state = STOPPING
            self._stop()

    def action_record(self) -> None:
        self.recording = not self.recording
        self._set_recording(self.recording)

    def action_panic(self) -> None:
        if not self.bridge.panic():
            self.notify("nothing is playing", severity="information")

    def action_rescan(self) -> None:
        self.scan_ports()

    @on(Input.Submitted, "#midi-file")
    def _play_file(self) -> None:
        if self.state == STOPPED:
            self.action_start_stop()

    # -- what the bridge reports -----------------------------------------------------------

    def on_ports_scanned(self, message: msg.PortsScanned) -> None:
        self.query_one(PortsPanel).show_ports(message.ports.inputs, message.ports.outputs)

    def on_port_scan_failed(self, message: msg.PortScanFailed) -> None:
        self.query_one(PortsPanel).show_error(message.error, message.hint)
        # libjack prints its failed probe straight onto the terminal, which Textual draws on too.
        self.refresh()

    def on_thru_started(self, message: msg.ThruStarted) -> None:
        self.route = f"{message.input_name} → {message.output_name}"
        self.state = RUNNING

    def on_thru_stopped(self, message: msg.ThruStopped) -> None:
        self.state = STOPPED
        self.recording_now = False
        if self.app.focused is None:  # focus left with the disabled ports panel; bring it back
            self.query_one("#inputs").focus()

    def on_stats_updated(self, message: msg.StatsUpdated) -> None:
        self.query_one(Meters).stats = message.stats

    def on_engine_failed(self, message: msg.EngineFailed) -> None:
        self.problem = message.error
        self.notify(message.error, title="MIDI stopped", severity="error", timeout=10)

    def on_recording_started(self, message: msg.RecordingStarted) -> None:
        self.recording_now = True

    def on_recording_saved(self, message: msg.RecordingSaved) -> None:
        self.recording_now = False
        self.notify(f"saved {message.midi_path}", title="Recording")

    def on_recording_failed(self, message: msg.RecordingFailed) -> None:
        self.recording_now = False
        self.notify(message.error, title="Not recording", severity="error", timeout=10)

    def on_recordings_recovered(self, message: msg.RecordingsRecovered) -> None:
        names = ", ".join(path.name for path in message.midi_paths)
        self.notify(f"recovered {len(message.midi_paths)} interrupted recording(s): {names}",
                    title="Recordings", timeout=10)

    def on_log_recorded(self, message: msg.LogRecorded) -> None:
        level = message.record.levelno
        style = "red" if level >= logging.ERROR else "yellow" if level >= logging.WARNING else ""
        self.query_one(RichLog).write(Text(message.text, style=style))

    # -- drawing ---------------------------------------------------------------------------

    def watch_state(self) -> None:
        # Ports cannot change under a running path; stop first.
        self.query_one(PortsPanel).disabled = self.state != STOPPED
        self._show_status()

    def watch_recording(self) -> None:
        self._show_status()

    def watch_recording_now(self) -> None:
        self._show_status()

    def watch_problem(self) -> None:
        self._show_status()

    def _show_status(self) -> None:
        text = Text()
        if self.state == RUNNING:
            text.append("▶ playing  ", style="bold green")
            text.append(self.route)
        else:
            text.append(f"■ {self.state}", style="bold")
            if self.state == STOPPED:
                text.append("  (space to start)", style="dim")
        if self.recording_now:
            text.append("   ● REC", style="bold red")
        elif self.recording:
            text.append("   ○ record armed", style="red")
        if self.problem:
            text.append(f"\n✖ {self.problem}", style="bold red")
        self.query_one("#status", Static).update(text)
