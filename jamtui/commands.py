"""Every action of the console in Textual's command palette (ctrl+p), by what it does, with the
key it is on now (a preset's remapping included): the same actions the hotkeys run."""
from __future__ import annotations

from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


class JamCommands(Provider):
    """The bindings of the screen the palette was opened on (the jam screen's and the app's)."""

    def _commands(self) -> list[tuple[str, str, Binding]]:
        screen = self.screen
        live = getattr(screen, "live_bindings", None)
        if live is None:  # another screen: only the app's own actions
            bindings = [(b, b.key) for b in self.app.BINDINGS if isinstance(b, Binding) and b.id]
        else:
            bindings = live()
        commands = []
        for binding, keys in bindings:
            shown = " ".join(self.app.get_key_display(Binding(key, "")) for key in keys.split(","))
            commands.append((binding.description or binding.action, f"key {shown} · action {binding.id}", binding))
        return commands

    def _run(self, binding: Binding):
        # The app's bindings run on the app, the screen's on the screen, as their keys do.
        if any(binding is b for b in self.app.BINDINGS):
            return partial(self.app.run_action, binding.action)
        return partial(self.screen.run_action, binding.action)

    async def discover(self) -> Hits:
        for name, help_text, binding in self._commands():
            yield DiscoveryHit(name, self._run(binding), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, binding in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), self._run(binding), text=name, help=help_text)
