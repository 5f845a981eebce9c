"""Audio in and out (optional extra): transcription of piano audio to MIDI, rendering of MIDI to audio."""
