"""Frozen event types that travel through the engine: raw MIDI messages with a timestamp."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.IntEnum):
    NOTE_OFF = 0
    NOTE_ON = 1
    POLY_PRESSURE = 2
    CONTROL = 3
    PROGRAM = 4
    CHANNEL_PRESSURE = 5
    PITCH_BEND = 6
    SYSEX = 7
    CLOCK = 8
    START = 9
    CONTINUE = 10
    STOP = 11
    ACTIVE_SENSING = 12
    OTHER = 13


_CHANNEL_KINDS = {
    0x80: Kind.NOTE_OFF,
    0x90: Kind.NOTE_ON,
    0xA0: Kind.POLY_PRESSURE,
    0xB0: Kind.CONTROL,
    0xC0: Kind.PROGRAM,
    0xD0: Kind.CHANNEL_PRESSURE,
    0xE0: Kind.PITCH_BEND,
}
_STATUS_OF = {kind: status for status, kind in _CHANNEL_KINDS.items()}
_SYSTEM_KINDS = {
    0xF0: Kind.SYSEX,
    0xF8: Kind.CLOCK,
    0xFA: Kind.START,
    0xFB: Kind.CONTINUE,
    0xFC: Kind.STOP,
    0xFE: Kind.ACTIVE_SENSING,
}

SUSTAIN_CC = 64
ALL_SOUND_OFF_CC = 120
RESET_CONTROLLERS_CC = 121
ALL_NOTES_OFF_CC = 123


class MidiParseError(ValueError):
    """Raised for bytes that are not one complete MIDI message."""


@dataclass(frozen=True, slots=True)
class MidiEvent:
    """One MIDI message at a clock time.

    `number` is the note or controller number, `value` the velocity or controller value
    (pitch bend: the 14-bit value 0..16383). `data` holds the raw bytes of sysex and
    other system messages. `t_ns` is on the session clock (monotonic ns in a jam).
    """

    t_ns: int
    kind: Kind
    channel: int = 0
    number: int = 0
    value: int = 0
    data: bytes = b""

    @property
    def is_note_on(self) -> bool:
        return self.kind is Kind.NOTE_ON and self.value > 0

    @property
    def is_note_off(self) -> bool:
        return self.kind is Kind.NOTE_OFF or (self.kind is Kind.NOTE_ON and self.value == 0)

    def at(self, t_ns: int) -> MidiEvent:
        return MidiEvent(t_ns, self.kind, self.channel, self.number, self.value, self.data)

    def to_bytes(self) -> bytes:
        kind = self.kind
        if kind in _STATUS_OF:
            status = _STATUS_OF[kind] | (self.channel & 0x0F)
            if kind in (Kind.PROGRAM, Kind.CHANNEL_PRESSURE):
                return bytes((status, self.value & 0x7F))
            if kind is Kind.PITCH_BEND:
                return bytes((status, self.value & 0x7F, (self.value >> 7) & 0x7F))
            return bytes((status, self.number & 0x7F, self.value & 0x7F))
        if self.data:
            return self.data
        for status, system_kind in _SYSTEM_KINDS.items():
            if system_kind is kind and kind is not Kind.SYSEX:
                return bytes((status,))
        raise MidiParseError(f"cannot encode {kind.name} without data bytes")

    @classmethod
    def from_bytes(cls, t_ns: int, raw: bytes | list[int] | tuple[int, ...]) -> MidiEvent:
        """Parse one complete message. Note-on with velocity 0 becomes a note-off."""
        if not raw:
            raise MidiParseError("empty MIDI message")
        status = raw[0]
        if status < 0x80:
            raise MidiParseError(f"message starts with data byte 0x{status:02x}")
        if status < 0xF0:
            kind = _CHANNEL_KINDS[status & 0xF0]
            channel = status & 0x0F
            need = 2 if kind in (Kind.PROGRAM, Kind.CHANNEL_PRESSURE) else 3
            if len(raw) < need or any(b > 0x7F for b in raw[1:need]):
                raise MidiParseError(f"bad {kind.name} message {bytes(raw).hex(' ')}")
            if need == 2:
                return cls(t_ns, kind, channel, 0, raw[1])
            if kind is Kind.PITCH_BEND:
                return cls(t_ns, kind, channel, 0, raw[1] | (raw[2] << 7))
            if kind is Kind.NOTE_ON and raw[2] == 0:
                return cls(t_ns, Kind.NOTE_OFF, channel, raw[1], 0)
            return cls(t_ns, kind, channel, raw[1], raw[2])
        kind = _SYSTEM_KINDS.get(status, Kind.OTHER)
        data = bytes(raw) if kind in (Kind.SYSEX, Kind.OTHER) else b""
        return cls(t_ns, kind, data=data)


def note_on(t_ns: int, pitch: int, velocity: int, channel: int = 0) -> MidiEvent:
    return MidiEvent(t_ns, Kind.NOTE_ON, channel, pitch, velocity)


def note_off(t_ns: int, pitch: int, channel: int = 0, velocity: int = 0) -> MidiEvent:
    return MidiEvent(t_ns, Kind.NOTE_OFF, channel, pitch, velocity)


def control(t_ns: int, number: int, value: int, channel: int = 0) -> MidiEvent:
    return MidiEvent(t_ns, Kind.CONTROL, channel, number, value)


def all_channels_off(t_ns: int, *, panic: bool = False) -> list[MidiEvent]:
    """CC123 (all notes off) and CC121 (reset controllers) on each of the 16 channels, with
    CC120 (all sound off) too on a panic: what ends whatever a synth may still hold."""
    numbers = (ALL_NOTES_OFF_CC, RESET_CONTROLLERS_CC) + ((ALL_SOUND_OFF_CC,) if panic else ())
    return [control(t_ns, number, 0, channel) for channel in range(16) for number in numbers]


PERFORMER = 0
AI = 1
PLAYER_NAMES = ("performer", "ai")


@dataclass(frozen=True, slots=True)
class Note:
    """A whole note in musical time: seconds from the session (or file) start.

    `player` is PERFORMER or AI; `end_s` includes any sustain-pedal extension the source
    folded in. Velocity 1..127.
    """

    start_s: float
    end_s: float
    pitch: int
    velocity: int
    player: int = PERFORMER

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s
