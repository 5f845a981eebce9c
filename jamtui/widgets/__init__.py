"""jamtui's widgets, one per file."""
