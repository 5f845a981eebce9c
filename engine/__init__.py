"""jamtui's engine: MIDI in and out, timing, recording, and (later) the model; no UI imports."""
