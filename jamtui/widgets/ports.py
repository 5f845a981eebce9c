"""The ports panel: pick the performer's input (a port, jamtui's virtual port or a .mid file) and the output."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from engine.midi.ports import VIRTUAL_IN, VIRTUAL_OUT, is_midi_file_spec

FILE_OPTION = "file"


class PortsPanel(Vertical):
    """Shows the ports of the last scan, or why there are none; the highlighted entries are the choice."""

    DEFAULT_CSS = """
    PortsPanel OptionList { height: auto; max-height: 10; }
    PortsPanel #ports-error { display: none; }
    PortsPanel.-failed #ports-error { display: block; }
    PortsPanel.-failed OptionList, PortsPanel.-failed Input, PortsPanel.-failed .heading { display: none; }
    """
    # The path field takes every printable key, so it needs a key that leaves it.
    BINDINGS = [Binding("escape", "leave_path", "Leave path", show=False, id="leave_path")]

    def compose(self) -> ComposeResult:
        yield Label("Input", classes="heading")
        yield OptionList(id="inputs")
        yield Input(placeholder=".mid file to play as the performer", id="midi-file")
        yield Label("Output", classes="heading")
        yield OptionList(id="outputs")
        yield Static(id="ports-error")

    def show_ports(self, inputs: list[str], outputs: list[str]) -> None:
        """List the ports found, keeping the choice made before a rescan where it still exists."""
        self.remove_class("-failed")
        self.query_one("#ports-error", Static).update("")
        self._fill("#inputs", [
            Option(f"{VIRTUAL_IN}  (virtual port)", id=f"virtual:{VIRTUAL_IN}"),
            *(Option(name, id=name) for name in inputs),
            Option("MIDI file (path below)", id=FILE_OPTION),
        ])
        self._fill("#outputs", [
            Option(f"{VIRTUAL_OUT}  (virtual port)", id=f"virtual:{VIRTUAL_OUT}"),
            *(Option(name, id=name) for name in outputs),
        ])

    def prefer(self, input_spec: str, output_spec: str) -> None:
        """Choose the entries these port specs name (exact name or unique suffix; a .mid path
        goes into the path field), so the next start plays through them again."""
        if is_midi_file_spec(input_spec):
            path = input_spec[len("file:"):] if input_spec.startswith("file:") else input_spec
            self.query_one("#midi-file", Input).value = path
            _choose(self.query_one("#inputs", OptionList), FILE_OPTION)
        else:
            _choose(self.query_one("#inputs", OptionList), input_spec)
        _choose(self.query_one("#outputs", OptionList), output_spec)

    def show_error(self, error: str, hint: str) -> None:
        self.add_class("-failed")
        self.query_one("#inputs", OptionList).clear_options()
        self.query_one("#outputs", OptionList).clear_options()
        self.query_one("#ports-error", Static).update(f"{error}\n\nHint: {hint}")

    def action_leave_path(self) -> None:
        self.query_one("#inputs", OptionList).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        # Typing a path means playing it: point the input choice at the file entry.
        inputs = self.query_one("#inputs", OptionList)
        if event.value.strip() and inputs.option_count:
            inputs.highlighted = inputs.get_option_index(FILE_OPTION)

    def _fill(self, selector: str, options: list[Option]) -> None:
        option_list = self.query_one(selector, OptionList)
        chosen = _highlighted_id(option_list)
        option_list.clear_options()
        option_list.add_options(options)
        ids = [option.id for option in options]
        option_list.highlighted = ids.index(chosen) if chosen in ids else 0

    def selection(self) -> tuple[str, str]:
        """The chosen (input spec, output spec); ValueError says what is missing."""
        input_id = _highlighted_id(self.query_one("#inputs", OptionList))
        output_id = _highlighted_id(self.query_one("#outputs", OptionList))
        if input_id is None or output_id is None:
            raise ValueError("no MIDI ports to play through (press s to rescan)")
        if input_id == FILE_OPTION:
            path = self.query_one("#midi-file", Input).value.strip()
            if not path:
                raise ValueError("type the path of a .mid file to play")
            input_id = "file:" + str(Path(path).expanduser())
        return input_id, output_id


def _highlighted_id(option_list: OptionList) -> str | None:
    index = option_list.highlighted
    if index is None or index >= option_list.option_count:
        return None
    return option_list.get_option_at_index(index).id


def _choose(option_list: OptionList, spec: str) -> None:
    ids = [option_list.get_option_at_index(i).id for i in range(option_list.option_count)]
    matches = [i for i, id_ in enumerate(ids) if id_ == spec] or [i for i, id_ in enumerate(ids) if id_.endswith(spec)]
    if len(matches) == 1:
        option_list.highlighted = matches[0]
