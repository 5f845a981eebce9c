"""The help screen (`?`, F1): every binding of the live keymap, a preset's or the user's
remapping included, with the action id a `[hotkeys]` table moves it by. Esc, q or ? closes it."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    """`rows`: (keys as shown, what it does, action id) for each binding, in the keymap's order."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close", id="close_help")]

    def __init__(self, rows: list[tuple[str, str, str]], preset_name: str = "") -> None:
        super().__init__()
        self.rows = rows
        self.preset_name = preset_name

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            title = "keys" + (f" (preset {self.preset_name})" if self.preset_name else "")
            yield Static(f"[b]{title}[/b]  ·  ctrl+p: every action by name  ·  esc closes", id="help-title")
            table = DataTable(id="help-keys", cursor_type="none", zebra_stripes=True)
            table.add_columns("key", "does", "action (remap by it)")
            for row in self.rows:
                table.add_row(*row)
            yield table
            yield Static("A preset's [b]\\[hotkeys][/b] table or your config moves a key by its action, "
                         "e.g. panic = \"escape\".", id="help-hint")

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
