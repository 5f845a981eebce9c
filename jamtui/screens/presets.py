"""The presets panel: the shipped presets and yours, what each sets (mode, temperature, the
respond/imitate dial, injection, density); play one, nudge those values live, and save the result
as a new preset of yours (never over an existing file)."""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Label, Static

from engine.presets.files import PresetInfo, list_presets, load_preset, save_user_preset
from engine.presets.schema import MODES, NONE, STRATEGIES, Preset, PresetError, merge
from jamtui.screens.help import PANEL_HELP

# Every injection a preset can tick, from one strategy to all, in the order `+` steps through them.
INJECTIONS = [combo for n in range(1, len(STRATEGIES) + 1) for combo in itertools.combinations(STRATEGIES, n)]
DENSITY_STEP_NPS = 0.5  # below the first step: none, the AI follows the performer's density


@dataclass(frozen=True)
class Setting:
    """A value of the preset the panel shows and nudges: its row label and where it lives."""

    key: str  # the dotted key `merge` takes
    label: str
    step: float | None  # a number's step; None for a choice


SETTINGS = (
    Setting("mode", "mode", None),
    Setting("sampling.temperature", "temperature", 0.05),
    Setting("injection.respond_imitate", "dial (respond → imitate)", 0.05),
    Setting("injection.strategy", "injection", None),
    Setting("conditioning.density_nps", "density (notes/s)", DENSITY_STEP_NPS),
)


def value_of(preset: Preset, key: str) -> Any:
    part, _, name = key.rpartition(".")
    return getattr(getattr(preset, part) if part else preset, name)


def shown(value: Any) -> str:
    """A setting as the panel writes it."""
    if value is None:
        return "follow you"
    if isinstance(value, tuple):
        return "+".join(value)
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def brief(value: Any) -> str:
    """A setting as the list of presets writes it, narrower: `call&resp`, `har+vel`, `you`."""
    if value is None:
        return "you"
    if isinstance(value, tuple):
        return "+".join(v[:3] for v in value)
    return "call&resp" if value == "call-and-response" else shown(value)


def nudged(preset: Preset, setting: Setting, direction: int) -> Preset:
    """`preset` with `setting` one step up (+1) or down (-1), kept in the schema's range (a choice
    goes round); PresetError if the result does not check."""
    value = value_of(preset, setting.key)
    if setting.key == "mode":
        new: Any = MODES[(MODES.index(value) + direction) % len(MODES)] if value in MODES else MODES[0]
    elif setting.key == "injection.strategy":
        here = next((i for i, combo in enumerate(INJECTIONS) if set(combo) == set(value)), -1)
        new = list(INJECTIONS[(here + direction) % len(INJECTIONS)])
    else:
        part, _, name = setting.key.rpartition(".")
        lo, hi = next(f.metadata["range"] for f in fields(getattr(preset, part)) if f.name == name)
        assert setting.step is not None
        if value is None:  # density: "follow you" sits below its first step
            new = setting.step if direction > 0 else None
        else:
            new = round(min(hi, max(lo, value + direction * setting.step)), 2)
            if setting.key == "conditioning.density_nps" and direction < 0 and new < setting.step:
                new = None
        new = NONE if new is None else new
    return merge(preset, {setting.key: new}, origin=f"preset {preset.name}")


class PresetsScreen(ModalScreen[Preset]):
    """`current`: the preset playing. `apply_preset(preset)` plays a preset chosen here (Enter on
    one) or nudged here (`-` `+` on a setting), at once. `user_dir`: the user's presets (default:
    their config dir), where `ctrl+s` saves. Dismissed with the preset playing when it closes."""

    DEFAULT_CSS = """
    PresetsScreen { align: center middle; }
    #presets { width: 100%; max-width: 110; height: 100%; padding: 0 1; background: $surface; }
    #presets-title { height: 1; }
    #presets-list { height: 1fr; min-height: 4; }
    #presets-about { height: auto; max-height: 2; color: $text-muted; }
    #presets-live { height: 1; margin-top: 1; }
    #presets-settings { height: auto; }
    #presets-save { height: 1; }
    #presets-save Label { width: auto; color: $text-muted; }
    #preset-name { width: 1fr; }
    #presets-message { height: auto; max-height: 3; }
    #presets-message.problem { color: $error; }
    """

    BINDINGS = [
        Binding("escape,q", "close", "Close", id="presets_close"),
        Binding("minus", "nudge(-1)", "Nudge down", id="presets_nudge_down"),
        Binding("plus,equals_sign", "nudge(1)", "Nudge up", id="presets_nudge_up"),
        Binding("ctrl+s", "save", "Save as", id="presets_save"),
        PANEL_HELP,
    ]

    def __init__(self, current: Preset, *, apply_preset: Callable[[Preset], None],
                 user_dir: Path | None = None) -> None:
        super().__init__()
        self.live = current
        self.apply_preset = apply_preset
        self.user_dir = user_dir
        self.infos: list[PresetInfo] = []
        self.presets: list[Preset | None] = []  # each listed preset as loaded (None: it does not load)

    def compose(self) -> ComposeResult:
        with Vertical(id="presets"):
            yield Static(Text.assemble(("presets", "bold"), "  ·  enter plays one  ·  - + nudge the setting below"
                                                              "  ·  esc closes"), id="presets-title")
            yield DataTable(id="presets-list", cursor_type="row", zebra_stripes=True)
            yield Static("", id="presets-about")
            yield Static("", id="presets-live")
            yield DataTable(id="presets-settings", cursor_type="row", show_header=False)
            with Horizontal(id="presets-save"):
                yield Label("save as ")
                yield Input(placeholder="a new name, then enter (letters, digits, - and _)", id="preset-name",
                            restrict=r"[A-Za-z0-9_-]*", compact=True)
            yield Static("", id="presets-message")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        listing = self.query_one("#presets-list", DataTable)
        listing.add_columns("preset", "from", "mode", "temp", "dial", "injection", "density")
        settings = self.query_one("#presets-settings", DataTable)
        settings.add_columns("setting", "value")
        self.refresh_presets()
        self._draw_live()
        listing.focus()

    def refresh_presets(self) -> None:
        """Read the preset directories again, the one playing highlighted."""
        self.infos = list_presets(user_dir=self.user_dir)
        self.presets = []
        listing = self.query_one("#presets-list", DataTable)
        listing.clear()
        for info in self.infos:
            try:
                preset = load_preset(info.path, user_dir=self.user_dir)
            except PresetError:
                preset = None
            self.presets.append(preset)
            values = [brief(value_of(preset, s.key)) for s in SETTINGS] if preset else ["(invalid)"] + [""] * 4
            listing.add_row(Text(info.name), info.source, *(Text(v) for v in values), key=str(info.path))
        here = self._index_of(self.live)
        if here is not None:
            listing.move_cursor(row=here)
        self._draw_about()

    # -- actions -----------------------------------------------------------------------------

    def action_close(self) -> None:
        self.dismiss(self.live)

    def action_nudge(self, direction: int) -> None:
        row = self.query_one("#presets-settings", DataTable).cursor_row
        setting = SETTINGS[row if row is not None and 0 <= row < len(SETTINGS) else 0]
        old = value_of(self.live, setting.key)
        try:
            preset = nudged(self.live, setting, direction)
        except PresetError as exc:
            self._say(str(exc), problem=True)
            return
        if value_of(preset, setting.key) == old:
            self._say(f"{setting.label} stays at {shown(old)}, the end of its range")
            return
        self._play(preset)
        self._say(f"{setting.label} {shown(old)} → {shown(value_of(preset, setting.key))}")

    def action_save(self) -> None:
        field = self.query_one("#preset-name", Input)
        if not field.value.strip():
            field.focus()
            self._say("type a name for the new preset, then enter")
            return
        self._save(field.value.strip())

    # -- what happens --------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#presets-list")
    def _preset_chosen(self, event: DataTable.RowSelected) -> None:
        index = event.cursor_row
        preset = self.presets[index] if 0 <= index < len(self.presets) else None
        if preset is None:
            self._say(f"{self.infos[index].path}: {self.infos[index].description}", problem=True)
            return
        self._play(preset)
        self._say(f"playing preset {preset.name}")

    @on(DataTable.RowHighlighted, "#presets-list")
    def _preset_highlighted(self) -> None:
        self._draw_about()

    @on(Input.Submitted, "#preset-name")
    def _name_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self._say("type a name for the new preset, then enter", problem=True)
            return
        self._save(event.value.strip())

    def _save(self, name: str) -> None:
        try:
            path = save_user_preset(self.live, name, overwrite=False, user_dir=self.user_dir)
            saved = load_preset(path, user_dir=self.user_dir)
        except PresetError as exc:
            self._say(str(exc), problem=True)  # names the file, e.g. one already there
            return
        self.query_one("#preset-name", Input).value = ""
        self._play(saved)
        self.refresh_presets()
        self._say(f"saved preset {name} in {path}")
        self.query_one("#presets-list", DataTable).focus()

    def _play(self, preset: Preset) -> None:
        self.live = preset
        self.apply_preset(preset)
        self._draw_live()

    # -- drawing -----------------------------------------------------------------------------

    def _draw_live(self) -> None:
        here = self._index_of(self.live)
        edited = here is None or self.presets[here] != self.live
        self.query_one("#presets-live", Static).update(Text.assemble(
            ("playing: ", "bold"), self.live.name, (" (changed here, unsaved)", "yellow") if edited else ""))
        table = self.query_one("#presets-settings", DataTable)
        row = table.cursor_row
        table.clear()
        for setting in SETTINGS:
            table.add_row(setting.label, Text(shown(value_of(self.live, setting.key))), key=setting.key)
        table.move_cursor(row=row or 0)

    def _draw_about(self) -> None:
        row = self.query_one("#presets-list", DataTable).cursor_row
        about = ""
        if self.infos and row is not None and 0 <= row < len(self.infos):
            info = self.infos[row]
            where = "yours" if info.source == "user" else "shipped"
            about = f"{info.description}  ({where}: {info.path.name})"
        self.query_one("#presets-about", Static).update(Text(about))

    def _index_of(self, preset: Preset) -> int | None:
        source = preset.source
        for i, info in enumerate(self.infos):
            if source is not None and info.path.resolve() == source:
                return i
        return None

    def _say(self, text: str, problem: bool = False) -> None:
        line = self.query_one("#presets-message", Static)
        line.update(Text(text))
        line.set_class(problem, "problem")

