"""Every action is also a command in the palette (ctrl+p), by what it does: typing part of its
name and Enter runs it as its key would."""
from __future__ import annotations

from textual.command import CommandPalette

from engine.presets.schema import Preset
from jamtui.commands import JamCommands
from jamtui.screens.help import HelpScreen
from jamtui.screens.jam import JamScreen
from tests.ui.rig import Rig, async_test, log_text, make_app, ports_listed, status_text, wait_for


async def run_command(pilot, typed: str) -> None:
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CommandPalette))
    await pilot.press(*typed)
    await pilot.pause(0.3)  # the providers search as one types
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, CommandPalette))
    await pilot.pause()


@async_test
async def test_the_palette_runs_the_jam_screens_actions_by_name(tmp_path):
    app = make_app(Rig(), tmp_path)
    async with app.run_test() as pilot:
        await ports_listed(pilot)
        assert app.screen.mode == "call-and-response"
        await run_command(pilot, "accomp")
        await wait_for(pilot, lambda: app.screen.mode == "accompany")
        assert "mode    accompany" in status_text(app)
        await run_command(pilot, "panic")
        await wait_for(pilot, lambda: "nothing is playing" in log_text(app))
        await run_command(pilot, "next pres")
        await wait_for(pilot, lambda: "preset  imitate" in status_text(app))


@async_test
async def test_the_palette_offers_every_binding_with_its_live_key(tmp_path):
    app = make_app(Rig(), tmp_path, preset=Preset(hotkeys={"panic": "x"}))
    async with app.run_test() as pilot:
        await ports_listed(pilot)
        provider = JamCommands(app.screen)
        commands = {name: help_text for name, help_text, _ in provider._commands()}
        assert commands["Panic"] == "key x · action panic"
        assert commands["Quit"] == "key q · action quit" and "Help" in commands and "Rescan" in commands
        assert len(commands) == len([*JamScreen.BINDINGS, *app.BINDINGS])
        await run_command(pilot, "help")
        # Help is an app action: it opens the help screen over the jam screen.
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
