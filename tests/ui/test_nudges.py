"""The respond/imitate dial and the temperature from the keyboard: small steps, kept in the
schema's ranges, remappable by action, reaching the jam as a preset change."""
from __future__ import annotations

from engine.presets.schema import Preset
from tests.ui.rig import Rig, async_test, log_text, make_app, ports_listed, start, wait_for
from tests.ui.test_help import help_rows


def chosen(app) -> Preset:
    return app.screen.preset_steps.current


@async_test
async def test_dial_and_temperature_keys_step_within_range_while_stopped(tmp_path):
    app = make_app(Rig(), tmp_path, preset=Preset(hotkeys={"temperature_up": "u"}))
    async with app.run_test() as pilot:
        await ports_listed(pilot)
        await pilot.press("2")  # a mode chosen stays chosen through a nudge
        await pilot.press("greater_than_sign")
        assert chosen(app).injection.respond_imitate == 0.35
        assert "dial (respond → imitate) 0.30 → 0.35" in log_text(app)
        await pilot.press(*["less_than_sign"] * 10)
        assert chosen(app).injection.respond_imitate == 0.0
        await wait_for(pilot, lambda: "stays at 0.00, the end of its range" in log_text(app))
        await pilot.press("u", "u")  # the preset moved temperature_up to u
        assert chosen(app).sampling.temperature == 1.05
        await pilot.press("plus")  # no longer temperature up
        assert chosen(app).sampling.temperature == 1.05
        await pilot.press(*["minus"] * 30)
        assert chosen(app).sampling.temperature == 0.0
        assert chosen(app).mode == app.screen.mode == "accompany"
        assert chosen(app).name == "default"
        await pilot.press("question_mark")
        await pilot.pause()
        listed = help_rows(app)
        assert ("u", "Temperature up", "temperature_up") in listed
        assert ("<", "Dial toward respond", "dial_down") in listed


@async_test
async def test_a_nudge_mid_jam_reaches_the_jam_and_keeps_its_mode(tmp_path, jam_model):
    app = make_app(Rig(), tmp_path, jam_model, preset=Preset())
    async with app.run_test() as pilot:
        await start(app, pilot)
        await pilot.press("greater_than_sign", "greater_than_sign", "equals_sign")
        await wait_for(pilot, lambda: app.bridge.jam.preset.injection.respond_imitate == 0.4)
        await wait_for(pilot, lambda: app.bridge.jam.preset.sampling.temperature == 1.0)
        assert app.bridge.jam.mode == "call-and-response"
        assert "temperature 0.95 → 1.00 after this phrase" in log_text(app)
        await pilot.press("q")
