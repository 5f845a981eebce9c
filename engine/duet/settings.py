"""What the engine makes of a preset: its sampling, injection settings, model conditions and prime
notes as the engine's own types (the preset itself is plain data, `engine.presets.schema`)."""
from __future__ import annotations

import logging
from dataclasses import asdict, replace

from engine.duet.injection import InjectionSettings
from engine.duet.prime import read_prime
from engine.events import Note
from engine.model.sampling import Sampling
from engine.presets.schema import (
    ConditioningSettings, InjectionSettingsRef, Limits, Mode, Preset, PresetError, SamplingSettings, Strategy,
)
from engine.tokens.conditions import Conditions

log = logging.getLogger(__name__)


def sampling_of(table: SamplingSettings) -> Sampling:
    return Sampling(**asdict(table))


def injection_of(table: InjectionSettingsRef, limits: Limits | None = None) -> InjectionSettings:
    """The strategies a user ticks map onto the injection's switches; `input_delay_s` is a
    fixed delay added to the respond/imitate dial's own; the AI's limits set its register."""
    defaults = InjectionSettings()
    register = {}
    if limits is not None and limits.high_pitch - limits.low_pitch >= 11:
        register = {"register_low": limits.low_pitch, "register_high": limits.high_pitch}
    return InjectionSettings(
        respond_imitate=table.respond_imitate,
        respond_delay_s=defaults.respond_delay_s + table.input_delay_s,
        harmony="move" if Strategy.HARMONIC in table.strategy else "off",
        velocity_under_db=defaults.velocity_under_db if Strategy.VELOCITY in table.strategy else None,
        anti_echo="vary" if table.anti_echo else "off",
        **register,
    )


def injection_in(settings: InjectionSettings, mode: Mode) -> InjectionSettings:
    """The injection settings as `mode` plays them: an accompanist stays under the soloist
    (3 dB, unless the preset set its own)."""
    if mode is Mode.ACCOMPANY and settings.velocity_under_db is None:
        return replace(settings, velocity_under_db=3.0)
    return settings


def conditions_of(table: ConditioningSettings) -> Conditions:
    return Conditions(**{k: v for k, v in asdict(table).items() if k != "guidance_weight"})


def prime_of(preset: Preset) -> tuple[Note, ...]:
    """The AI's notes of the preset's prime phrases (`engine.duet.prime.read_prime`); none, and
    a warning in the log, when one cannot be read: a jam switching presets plays on without them
    (a jam starting checks them first with `read_prime`, which raises)."""
    try:
        return read_prime(preset)
    except PresetError as exc:
        log.warning("%s; playing without the prime phrases", exc)
        return ()
