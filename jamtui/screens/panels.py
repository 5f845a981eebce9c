"""The jam screen's panels: presets, styles and the training screen, opened over the jam (which
goes on). `Panels` is mixed into `JamScreen`: what each panel picks reaches the jam through
`use_preset`, the same path as stepping presets."""
from __future__ import annotations

from dataclasses import replace
from pathlib import PurePath

from engine.presets.schema import Preset
from jamtui.errors import UserError
from jamtui.screens.presets import PresetsScreen
from jamtui.screens.styles import StylesScreen
from jamtui.screens.training import TrainingScreen
from jamtui.training_run import TrainSettings


def style_spec(preset: Preset) -> str:
    """The preset's adapters as `--style` spells them (`name:weight,...`, or "none")."""
    return ",".join(f"{PurePath(a.path).name}:{a.weight:g}" for a in preset.model.adapters) or "none"


class Panels:
    """Actions of `JamScreen` (which has `preset_steps`, `mode`, `use_preset` and `_tell`)."""

    def action_presets(self) -> None:
        """Shipped and user presets: pick one, nudge its settings live, save it as a new one."""
        current = replace(self.preset_steps.current, mode=self.mode)
        self.app.push_screen(PresetsScreen(current, apply_preset=self.use_preset, user_dir=self.app.user_presets_dir))

    def action_styles(self) -> None:
        """The trained styles and their figures: play one, or blend two."""
        self.app.push_screen(StylesScreen(style_spec(self.preset_steps.current), switch_style=self.use_style_spec))

    def action_train(self) -> None:
        """Train a style from a corpus (a child `jamtui train`); the jam goes on, slower."""
        adapters = self.preset_steps.current.model.adapters
        corpus = PurePath(adapters[0].path).name if adapters else "mine"
        self.app.push_screen(TrainingScreen(TrainSettings(corpus=corpus, style=""),
                                            switch_style=lambda name: self.use_style_spec(f"{name}:1")))

    def use_style_spec(self, spec: str) -> None:
        """Play the styles `spec` names (`--style` syntax) with the preset in use."""
        from jamtui.cli import parse_styles  # the console is started from the CLI: no import at load
        from jamtui.offline_commands import with_styles

        try:
            preset = with_styles(self.preset_steps.current, parse_styles(spec))
        except UserError as exc:  # a style removed since the panel listed it
            self._tell(str(exc), severity="error")
            return
        self.use_preset(preset)
