"""The help screen (`?`, F1): every binding of the live keymap, a preset's or the user's
remapping included, with the action id a `[hotkeys]` table moves it by. Esc, q or ? closes it."""
from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from jamtui.hotkeys import live_keys

# A panel's own help key, remapped with the app's (same id): no app binding reaches past a modal screen.
PANEL_HELP = Binding("question_mark,f1", "app.help", "Help", id="help")


def key_rows(app: App, bindings: list[tuple[Binding, str]]) -> list[tuple[str, str, str]]:
    """(keys as shown, what it does, action id) of each (binding, the keys it answers to now)."""
    return [(" ".join(app.get_key_display(Binding(key, "")) for key in keys.split(",")),
             binding.description or binding.action, binding.id or "") for binding, keys in bindings]


def panel_bindings(own: list[Binding], app_bindings: list[Binding],
                   keymap: dict[str, str]) -> list[tuple[Binding, str]]:
    """A panel's bindings, then the app's keys that none of them shadows (a panel's q closes it),
    each with the keys it answers to under `keymap`."""
    mine = live_keys(own, keymap)
    taken = {key for _, keys in mine for key in keys.split(",")}
    rest = [(b, ",".join(key for key in keys.split(",") if key not in taken))
            for b, keys in live_keys(app_bindings, keymap)]
    return mine + [(b, keys) for b, keys in rest if keys]


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
