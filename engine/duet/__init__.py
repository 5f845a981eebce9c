"""The duet: the jam's lifecycle, the session that conducts it, turn-taking, listening, injection and the warm context."""
