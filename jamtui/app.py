"""`JamApp`: the Textual console around the engine; today the MIDI path (ports, thru, record, panic)."""
from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from jamtui.bridge import (
    EngineBridge,
    PortsProvider,
    ThruFactory,
    default_ports_provider,
    default_recordings_dir,
    open_thru,
)
from jamtui.screens.jam import JamScreen


class JamApp(App):
    """The console. `thru_factory(input_spec, output_spec) -> Thru` and `ports_provider() -> PortList`
    default to the real MIDI system; tests pass in-memory ones."""

    CSS_PATH = "app.tcss"
    TITLE = "jamtui"
    MODES = {"jam": JamScreen}
    DEFAULT_MODE = "jam"
    BINDINGS = [Binding("q", "quit", "Quit", id="quit")]

    def __init__(self, api: str | None = None, *, thru_factory: ThruFactory | None = None,
                 ports_provider: PortsProvider | None = None, recordings_dir: Path | None = None) -> None:
        super().__init__()
        self.api = api
        self.bridge = EngineBridge(
            thru_factory=thru_factory or (lambda input_spec, output_spec: open_thru(input_spec, output_spec, api=api)),
            ports_provider=ports_provider or default_ports_provider(api),
            recordings_dir=recordings_dir or default_recordings_dir(),
        )

    async def action_quit(self) -> None:
        # Silence before the terminal is handed back; blocking the UI for it is fine here.
        self.bridge.shutdown()
        self.exit()

    def on_unmount(self) -> None:
        # Every other way out (an exception, ctrl+q) passes here: end in silence too.
        self.bridge.shutdown()
