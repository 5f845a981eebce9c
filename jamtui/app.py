"""`JamApp`: the Textual console around the engine: the live duet with the model over MIDI ports."""
from __future__ import annotations

import sys
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from engine.clock import MonotonicClock
from engine.midi.ports import VIRTUAL_IN, VIRTUAL_OUT, open_ports
from engine.presets.files import load_preset
from engine.presets.schema import Preset
from jamtui import offline_commands
from jamtui.bridge import (
    ClockFactory,
    EngineBridge,
    ModelLoader,
    PortOpener,
    PortsProvider,
    default_ports_provider,
    default_recordings_dir,
)
from jamtui.commands import JamCommands
from jamtui.screens.help import HelpScreen, key_rows, panel_bindings
from jamtui.screens.jam import JamScreen


class JamApp(App):
    """The console. `preset` (default: the preset named "default") starts the jam; `input_spec`
    and `output_spec` are the ports a `jamtui jam` was given, and `autostart` starts on them at
    once (`quit_after_s`: and quits that long after). `port_opener(input_spec, output_spec, clock) -> (input, output)`, `ports_provider() ->
    PortList` and `model_loader(checkpoint_dir) -> (model, tokenizer)` default to the real MIDI
    system and checkpoints; tests pass in-memory ports and a model already loaded, and may give
    each jam a `FakeClock` (`clock_factory`) to play it with `app.bridge.jam.advance`."""

    CSS_PATH = "app.tcss"
    TITLE = "jamtui"
    MODES = {"jam": JamScreen}
    DEFAULT_MODE = "jam"
    COMMANDS = App.COMMANDS | {JamCommands}  # ctrl+p: every action by name, beside Textual's own
    BINDINGS = [Binding("q", "quit", "Quit", id="quit"), Binding("question_mark,f1", "help", "Help", id="help")]

    def __init__(self, api: str | None = None, *, preset: Preset | None = None, input_spec: str | None = None,
                 output_spec: str | None = None, autostart: bool = False, record: bool = False,
                 port_opener: PortOpener | None = None, ports_provider: PortsProvider | None = None,
                 model_loader: ModelLoader | None = None, recordings_dir: Path | None = None,
                 user_presets_dir: Path | None = None, quit_after_s: float | None = None,
                 clock_factory: ClockFactory | None = None) -> None:
        super().__init__()
        self.api = api
        self.preset = preset if preset is not None else load_preset("default", user_dir=user_presets_dir)
        self.input_spec = input_spec or f"virtual:{VIRTUAL_IN}"
        self.output_spec = output_spec or f"virtual:{VIRTUAL_OUT}"
        self.autostart = autostart
        self.record = record
        self.user_presets_dir = user_presets_dir
        self.quit_after_s = quit_after_s  # counted from the first start of the jam
        self.bridge = EngineBridge(
            port_opener=port_opener or (lambda i, o, clock: open_ports(i, o, api=api, clock=clock)),
            ports_provider=ports_provider or default_ports_provider(api),
            model_loader=model_loader,  # None: the real checkpoints (engine.model.load, in a worker)
            recordings_dir=recordings_dir or default_recordings_dir(),
            clock_factory=clock_factory or MonotonicClock,
        )

    def action_help(self) -> None:
        """Every binding of the live keymap: the jam screen's with the preset's remapping, or a
        panel's own (presets, styles, training) and the app's keys it leaves free."""
        if isinstance(self.screen, HelpScreen):
            return
        if isinstance(self.screen, JamScreen):
            self.push_screen(HelpScreen(self.screen.key_rows(), self.screen.status.preset))
            return
        jam = next((s for s in self.screen_stack if isinstance(s, JamScreen)), None)
        bindings = panel_bindings(self.screen.BINDINGS, self.BINDINGS, jam.keymap if jam else {})
        self.push_screen(HelpScreen(key_rows(self, bindings)))

    async def action_quit(self) -> None:
        # Silence before the terminal is handed back; blocking the UI for it is fine here.
        self.bridge.shutdown()
        self.exit()

    def on_unmount(self) -> None:
        # Every other way out (an exception, ctrl+q) passes here: end in silence too.
        self.bridge.shutdown()


def run_console(args) -> int:
    """`jamtui` and `jamtui jam` without --headless: the console until it quits. From `jamtui jam`
    it starts at once on --in/--out with --preset and its --style (recording with --record, quitting
    after --seconds)."""
    jam = args.command == "jam"  # its --seconds and --record are checked by the parser (jamtui.arguments)
    # A bad preset is one line, before the screen; --style replaces the preset's adapters, as headless.
    preset = offline_commands.with_styles(load_preset(args.preset if jam else "default"), args.style if jam else None)
    app = JamApp(api=args.api, preset=preset, input_spec=args.in_port if jam else None,
                 output_spec=args.out_port if jam else None, autostart=jam, record=jam and args.record is not None,
                 recordings_dir=args.record if jam else None, quit_after_s=args.seconds if jam else None)
    app.run()
    for path in app.bridge.saved:  # the last one was saved as the screen closed, unseen
        print(f"jamtui: recorded {path}", file=sys.stderr)
    return app.return_code or 0
