"""`jamtui jam --style NAME` without --headless: the console starts its jam with the style merged
into the model, and says so."""
from __future__ import annotations

from engine.clock import FakeClock
from jamtui.app import JamApp
from jamtui.cli import main
from jamtui.screens.jam import RUNNING
from tests.ui.rig import PORTS, Rig, async_test, status_text, wait_for


def test_the_console_plays_the_style_it_was_started_with(tmp_path, monkeypatch, jam_model):
    from engine.model.adapters import write_random_adapter
    from engine.model.checkpoint import read_meta
    from engine.model.config import DEFAULT_MODEL_DIR
    from engine.user_dirs import styles_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    style = write_random_adapter(styles_dir() / "mine", read_meta(DEFAULT_MODEL_DIR).config, rank=4)
    rig, loads, built = Rig(), [], []

    def loader(path, adapters=()):
        loads.append((path, list(adapters)))
        return jam_model

    def console(**kwargs) -> JamApp:
        """The console `run_console` builds, on memory ports and a fake clock; the test runs it below."""
        app = JamApp(**kwargs, port_opener=rig.open, ports_provider=lambda: PORTS, model_loader=loader,
                     clock_factory=FakeClock, user_presets_dir=tmp_path / "presets")
        app.run = lambda *args, **kw: None
        built.append(app)
        return app

    monkeypatch.setattr("jamtui.app.JamApp", console)
    assert main(["jam", "--style", "mine:0.5", "--record", str(tmp_path / "recordings")]) == 0
    (app,) = built

    @async_test
    async def jam() -> None:
        async with app.run_test() as pilot:
            await wait_for(pilot, lambda: app.screen.state == RUNNING)
            assert app.bridge.jam.load_model().label == "default-model + mine:0.5"
            await wait_for(pilot, lambda: "default-model + mine:0.5" in status_text(app))
            await pilot.press("q")

    jam()
    assert loads == [(DEFAULT_MODEL_DIR, [(style, 0.5)])]  # the shipped model with the style merged, loaded once
    assert rig.specs == [("virtual:jamtui in", "virtual:jamtui out")]
