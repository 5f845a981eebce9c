"""The ports panel: pick the performer's input (a port, jamtui's virtual port or a .mid file) and the output."""
from __future__ import annotations

import re
from pathlib import Path

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from engine.midi.ports import VIRTUAL_IN, VIRTUAL_OUT, is_midi_file_spec
from engine.midi.system import CLIENT_NAME

FILE_OPTION = "file"
# Typed in a port list, these can only begin a path: they move into the path field instead.
PATH_STARTS = ("/", "~", ".")
# jamtui's own ports as the MIDI system lists them ("jamtui:jamtui out 128:1" on ALSA,
# "jamtui-01:jamtui out" on JACK after a rename): offered, they are a feedback loop.
_OWN_PORT = re.compile(rf"^{re.escape(CLIENT_NAME)}(-\d+)?:")


def is_own_port(name: str) -> bool:
    """Whether `name` is a port jamtui itself opened (its virtual ports, or the ends it connects with)."""
    return bool(_OWN_PORT.match(name))


class PortsPanel(Vertical):
    """Shows the ports of the last scan, or why there are none; the highlighted entries are the choice."""

    DEFAULT_CSS = """
    PortsPanel OptionList { height: auto; max-height: 10; }
    PortsPanel #ports-error { display: none; }
    PortsPanel.-failed #ports-error { display: block; }
    PortsPanel.-failed OptionList, PortsPanel.-failed Input, PortsPanel.-failed .heading { display: none; }
    """
    # The path field takes every printable key (no hotkey fires there), so it needs keys that leave it.
    BINDINGS = [Binding("escape", "leave_path", "Leave path", show=False, id="leave_path"),
                Binding("up", "leave_path", "Leave path", show=False, id="leave_path_up")]

    def compose(self) -> ComposeResult:
        yield Label("Input", classes="heading")
        yield OptionList(id="inputs")
        # No select-all on focus: the first character typed into a port list is already in it.
        yield Input(placeholder="path of a .mid file to play", id="midi-file", select_on_focus=False)
        yield Label("Output", classes="heading")
        yield OptionList(id="outputs")
        yield Static(id="ports-error")

    def show_ports(self, inputs: list[str], outputs: list[str]) -> None:
        """List the ports found, keeping the choice made before a rescan where it still exists."""
        self.remove_class("-failed")
        self.query_one("#ports-error", Static).update("")
        self._fill("#inputs", [
            Option(f"{VIRTUAL_IN}  (virtual port)", id=f"virtual:{VIRTUAL_IN}"),
            *(Option(name, id=name) for name in inputs if not is_own_port(name)),
            Option(".mid file (path below)", id=FILE_OPTION),
        ])
        self._fill("#outputs", [
            Option(f"{VIRTUAL_OUT}  (virtual port)", id=f"virtual:{VIRTUAL_OUT}"),
            *(Option(name, id=name) for name in outputs if not is_own_port(name)),
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

    def choose_file(self) -> None:
        """Make the path field's file the input of the next start."""
        inputs = self.query_one("#inputs", OptionList)
        if inputs.option_count:
            inputs.highlighted = inputs.get_option_index(FILE_OPTION)

    def show_error(self, error: str, hint: str) -> None:
        self.add_class("-failed")
        self.query_one("#inputs", OptionList).clear_options()
        self.query_one("#outputs", OptionList).clear_options()
        self.query_one("#ports-error", Static).update(f"{error}\n\nHint: {hint}")

    def action_leave_path(self) -> None:
        inputs = self.query_one("#inputs", OptionList)
        inputs.focus()
        if _highlighted_id(inputs) == FILE_OPTION and not self.path:
            inputs.highlighted = max(0, inputs.get_option_index(FILE_OPTION) - 1)

    @property
    def path(self) -> str:
        """The path typed in the path field, stripped ("" when none)."""
        return self.query_one("#midi-file", Input).value.strip()

    def on_input_changed(self, event: Input.Changed) -> None:
        # Typing a path means playing it: point the input choice at the file entry.
        inputs = self.query_one("#inputs", OptionList)
        if event.value.strip() and inputs.option_count:
            inputs.highlighted = inputs.get_option_index(FILE_OPTION)

    @on(OptionList.OptionHighlighted, "#inputs")
    @on(OptionList.OptionSelected, "#inputs")
    def _file_chosen(self, event: OptionList.OptionHighlighted | OptionList.OptionSelected) -> None:
        # The file entry is chosen to type a path: the cursor goes where the letters will land.
        inputs = self.query_one("#inputs", OptionList)
        if event.option.id == FILE_OPTION and inputs.has_focus:
            self.query_one("#midi-file", Input).focus()

    def on_key(self, event: events.Key) -> None:
        # A path typed into a port list would run each letter as a hotkey; its first character
        # starts a new path in the path field instead (unless a preset made that character a hotkey).
        if (event.character in PATH_STARTS and isinstance(self.app.focused, OptionList)
                and event.key not in self.app.active_bindings):
            path_field = self.query_one("#midi-file", Input)
            path_field.focus()
            path_field.value = event.character
            path_field.cursor_position = len(path_field.value)
            event.stop()
            event.prevent_default()

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
            if not self.path:
                raise ValueError("type the path of a .mid file to play")
            input_id = "file:" + str(Path(self.path).expanduser())
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
