"""Presets: shipped files validate, dump/load round-trips, every error is one line naming file and key."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from engine.presets.files import SHIPPED_DIR, list_presets, load_preset, save_user_preset
from engine.model.config import DEFAULT_MODEL_DIR
from engine.presets.schema import (
    AdapterRef,
    ConditioningSettings,
    Handover,
    InjectionSettingsRef,
    Limits,
    ModelRef,
    Preset,
    PresetError,
    SamplingSettings,
    dump_preset,
    merge,
    resolve_adapters,
    resolve_model_path,
)

SHIPPED = sorted(p.stem for p in SHIPPED_DIR.glob("*.toml"))


@pytest.fixture
def user_dir(tmp_path):
    directory = tmp_path / "user-presets"
    directory.mkdir()
    return directory


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, **kw) -> PresetError:
    with pytest.raises(PresetError) as info:
        load_preset(path, **kw)
    message = str(info.value)
    assert "\n" not in message
    return info.value


def test_every_mode_has_a_shipped_preset():
    assert {"default", "call-and-response", "accompany", "continuous", "imitate"} <= set(SHIPPED)
    assert {load_preset(name).mode for name in SHIPPED} == {"call-and-response", "accompany", "continuous"}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_presets_validate_and_are_commented(name, tmp_path):
    preset = load_preset(name, user_dir=tmp_path)
    assert preset.name == name
    assert preset.description
    assert preset.source == SHIPPED_DIR / f"{name}.toml"
    assert resolve_model_path(preset) == DEFAULT_MODEL_DIR
    assert "#" in (SHIPPED_DIR / f"{name}.toml").read_text()


def test_default_file_matches_the_code_defaults(tmp_path):
    assert load_preset("default", user_dir=tmp_path) == Preset()


def test_missing_keys_take_the_defaults(tmp_path):
    preset = load_preset(write(tmp_path, "[sampling]\ntemperature = 0.5\n", "mine.toml"))
    assert preset.name == "mine"
    assert preset.sampling == replace(SamplingSettings(), temperature=0.5)
    assert preset.limits == Limits()


def test_round_trip_of_every_field(tmp_path):
    preset = Preset(
        name="round trip",
        description='quotes " and \\ and\nnew lines\tand é',
        mode="continuous",
        context_s=12.5,
        handover=Handover(kind="note", number=108),
        model=ModelRef(path="ckpt/mine", adapters=(AdapterRef("a/one", 0.5), AdapterRef("a/two"))),
        sampling=SamplingSettings(temperature=0.0, top_k=40, top_p=1.0, repetition_penalty=1.2, no_repeat_ngram=4),
        injection=InjectionSettingsRef(strategy=("harmonic", "velocity"), respond_imitate=1.0, anti_echo=False),
        conditioning=ConditioningSettings(genre=None, tempo_bpm=96.0, key="F#m", density_nps=2.5, guidance_weight=1.5),
        limits=Limits(low_pitch=40, high_pitch=90, min_velocity=20, max_velocity=100, max_polyphony=4),
        output_offset_ms={"IAC Driver Bus 1": -12.5, "synth:in 1": 3.0},
        hotkeys={"panic": "escape", "start_stop": "ctrl+space"},
    )
    loaded = load_preset(write(tmp_path, dump_preset(preset)))
    assert loaded == preset
    assert dump_preset(loaded) == dump_preset(preset)


def test_strategy_string_is_a_one_item_list(tmp_path):
    assert load_preset(write(tmp_path, 'injection.strategy = "velocity"\n')).injection.strategy == ("velocity",)


@pytest.mark.parametrize(
    "text, key, reason",
    [
        ("[sampling]\ntemperature = 9.0\n", "sampling.temperature", "between 0 and 5"),
        ('[sampling]\ntemperature = "hot"\n', "sampling.temperature", "expected a number"),
        ("[sampling]\ntop_k = 2.5\n", "sampling.top_k", "whole number"),
        ("[injection]\nanti_echo = 1\n", "injection.anti_echo", "true or false"),
        ('mode = "duet"\n', "mode", "must be one of call-and-response, accompany, continuous"),
        ('[injection]\nstrategy = ["interleave", "harmonix"]\n', "injection.strategy", "did you mean 'harmonic'"),
        ('[injection]\nstrategy = []\n', "injection.strategy", "non-empty"),
        ('[conditioning]\ngenre = "bebop"\n', "conditioning.genre", "must be one of jazz-comping"),
        ('[conditioning]\nkey = "Bb"\n', "conditioning.key", "must be one of"),
        ("[conditioning]\nguidance_weight = 0.5\n", "conditioning.guidance_weight", "between 1 and 10"),
        ("context_s = 1\n", "context_s", "between 2 and 30"),
        ("[limits]\nlow_pitch = 80\nhigh_pitch = 60\n", "limits.high_pitch", "below limits.low_pitch"),
        ("[limits]\nmax_velocity = 200\n", "limits.max_velocity", "between 1 and 127"),
        ("[handover]\nkind = \"cc\"\n", "handover.number", "missing"),
        ("[handover]\nkind = \"pedal\"\nnumber = 64\n", "handover.kind", "must be one of note, cc"),
        ("[[model.adapters]]\nweight = 0.5\n", "model.adapters[0].path", "missing"),
        ('[output_offset_ms]\n"My Synth" = "late"\n', 'output_offset_ms."My Synth"', "expected a number"),
        ('[hotkeys]\npanic = "p"\nrecord = "p"\n', "hotkeys.record", "also bound to panic"),
        ("sampling = 3\n", "sampling", "expected a table"),
    ],
)
def test_errors_name_the_file_and_the_dotted_key(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    error = error_of(path)
    assert error.key == key
    assert str(error).startswith(f"preset {path}: {key}: ")
    assert reason in str(error)


@pytest.mark.parametrize(
    "text, key",
    [("tempo = 120\n", "tempo"), ("[sampling]\ntemprature = 0.9\n", "sampling.temprature"),
     ("[limits]\n[limits.extra]\nx = 1\n", "limits.extra"), ("[[model.adapters]]\npath = 'a'\nscale = 2\n",
                                                            "model.adapters[0].scale")],
)
def test_unknown_keys_are_errors(tmp_path, text, key):
    error = error_of(write(tmp_path, text))
    assert error.key == key
    assert f": {key}: unknown key" in str(error)


def test_unknown_key_suggests_the_close_one(tmp_path):
    assert "did you mean 'temperature'" in str(error_of(write(tmp_path, "[sampling]\ntemprature = 0.9\n")))


def test_toml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, 'name = "x"\n\n[sampling\ntemperature = 1\n')
    message = str(error_of(path))
    assert message.startswith(f"preset {path}: TOML syntax error")
    assert "line 3" in message


def test_missing_file_and_unknown_name(tmp_path, user_dir):
    assert "no such file" in str(error_of(tmp_path / "nope.toml"))
    message = str(error_of("no-such-preset", user_dir=user_dir))
    assert "'no-such-preset'" in message and "not found" in message and "default" in message


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes('description = "caf\xe9"\n'.encode("latin-1"))
    assert "UTF-8" in str(error_of(path))


def test_user_preset_shadows_shipped(user_dir):
    write(user_dir, 'description = "my own default"\n[sampling]\ntemperature = 0.3\n', "default.toml")
    preset = load_preset("default", user_dir=user_dir)
    assert preset.description == "my own default"
    assert preset.sampling.temperature == 0.3
    listed = {info.name: info for info in list_presets(user_dir=user_dir)}
    assert listed["default"].source == "user"
    assert listed["default"].path == user_dir / "default.toml"
    assert listed["accompany"].source == "shipped"
    assert set(SHIPPED) <= set(listed)


def test_list_shows_a_broken_preset_with_its_problem(user_dir):
    write(user_dir, "oops = 1\n", "broken.toml")
    info = {i.name: i for i in list_presets(user_dir=user_dir)}["broken"]
    assert info.description.startswith("(invalid: unknown key")


def test_save_never_overwrites_unless_asked(user_dir):
    first = replace(Preset(), description="first")
    path = save_user_preset(first, "mine", user_dir=user_dir)
    assert path == user_dir / "mine.toml"
    assert load_preset("mine", user_dir=user_dir) == replace(first, name="mine")
    with pytest.raises(PresetError, match="already exists"):
        save_user_preset(replace(Preset(), description="second"), "mine", user_dir=user_dir)
    assert load_preset("mine", user_dir=user_dir).description == "first"
    assert not (user_dir / "mine.toml.bak").exists()

    save_user_preset(replace(Preset(), description="second"), "mine", overwrite=True, user_dir=user_dir)
    assert load_preset("mine", user_dir=user_dir).description == "second"
    assert load_preset(user_dir / "mine.toml.bak").description == "first"
    assert sorted(p.name for p in user_dir.iterdir()) == ["mine.toml", "mine.toml.bak"]  # no temp files left


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "with space"])
def test_save_rejects_names_that_are_not_plain(user_dir, name):
    with pytest.raises(PresetError, match="letters, digits"):
        save_user_preset(Preset(), name, user_dir=user_dir)
    assert list(user_dir.iterdir()) == []


def test_code_looking_values_are_only_strings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    path = write(tmp_path, f'model = "{code}"\n')  # `model = "..."` is short for [model] path = "..."
    preset = load_preset(path)  # loading reads strings only
    assert preset.model.path == code
    assert not marker.exists()
    with pytest.raises(PresetError) as info:
        resolve_model_path(preset)
    assert str(info.value).startswith(f"preset {path.resolve()}: model.path: no such file or directory")

    path = write(tmp_path, f'[model]\npath = "default"\n[[model.adapters]]\npath = "{code}"\n', "adapter.toml")
    preset = load_preset(path)
    assert resolve_model_path(preset) == DEFAULT_MODEL_DIR
    with pytest.raises(PresetError, match=r"model\.adapters\[0\]\.path: no such file"):
        resolve_adapters(preset)
    assert not marker.exists()


def test_model_paths_resolve_relative_to_the_preset_file(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "lora").mkdir()
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    path = write(tmp_path, '[model]\npath = "ckpt"\n[[model.adapters]]\npath = "lora"\nweight = 0.7\n')
    preset = load_preset(path)
    assert resolve_model_path(preset) == tmp_path.resolve() / "ckpt"
    assert resolve_adapters(preset) == [(tmp_path.resolve() / "lora", 0.7)]


def test_merge_layers_overrides(tmp_path):
    base = load_preset("accompany", user_dir=tmp_path)
    merged = merge(base, {"sampling.temperature": 0.5, "limits": {"max_polyphony": 3}, "mode": None,
                          "conditioning": {"genre": "none"}, "hotkeys": {"panic": "escape"}})
    assert merged.sampling.temperature == 0.5
    assert merged.sampling.top_p == base.sampling.top_p
    assert merged.limits == replace(base.limits, max_polyphony=3)
    assert merged.mode == "accompany"  # None = flag not given
    assert merged.conditioning.genre is None
    assert merged.hotkeys == {"panic": "escape"}
    assert merged.source == base.source
    assert merge(merged, {"handover": {"kind": "cc", "number": 64}}).handover == Handover("cc", 64)


def test_merge_errors_name_the_origin(tmp_path):
    with pytest.raises(PresetError) as info:
        merge(Preset(), {"sampling.top_p": 0}, origin="--top-p")
    assert str(info.value).startswith("--top-p: sampling.top_p: must be between 0.01 and 1")
    with pytest.raises(PresetError, match="command line: sampling.tmp: unknown key"):
        merge(Preset(), {"sampling.tmp": 1})


def test_settings_convert_to_engine_objects():
    from engine.duet.settings import conditions_of, sampling_of
    from engine.tokens.conditions import Conditions

    assert conditions_of(Preset().conditioning) == Conditions(genre="jazz-comping")
    sampling = sampling_of(Preset().sampling)
    assert (sampling.temperature, sampling.top_p, sampling.repetition_penalty) == (0.95, 0.95, 1.05)


def test_every_shipped_preset_gives_engine_injection_settings():
    from engine.duet.injection import InjectionSettings
    from engine.duet.settings import injection_of
    from engine.presets.files import list_presets, load_preset

    for info in list_presets():
        if info.source != "shipped":
            continue
        preset = load_preset(info.path)
        settings = injection_of(preset.injection, preset.limits)
        assert isinstance(settings, InjectionSettings)
        assert settings.respond_imitate == preset.injection.respond_imitate
        assert (settings.harmony != "off") == ("harmonic" in preset.injection.strategy)


def test_a_preset_error_crosses_processes_intact():
    import copy

    error = PresetError(Path("mine.toml"), "sampling.top_p", "must be between 0.01 and 1")
    again = copy.copy(error)  # rebuilt from __reduce__, as a process pool rebuilds it
    assert str(again) == str(error) and again.key == "sampling.top_p"
