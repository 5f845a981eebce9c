"""jamtui's terminal face (Textual) and command line; the music happens in `engine`."""
