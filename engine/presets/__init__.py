"""Presets: the schema (frozen dataclasses from TOML tables) and the files (shipped and the user's)."""
