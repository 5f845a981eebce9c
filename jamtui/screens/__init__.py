"""jamtui's screens, one per file."""
