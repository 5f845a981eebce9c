"""MIDI in and out: real ports (python-rtmidi), a MIDI-file player, capture and the output scheduler."""
