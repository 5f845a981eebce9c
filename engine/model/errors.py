"""What the model package raises for a file it cannot use: a checkpoint, or a LoRA adapter (a
style), said in one line naming the directory and the problem."""
from __future__ import annotations

import os
from pathlib import Path


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line naming the directory and the problem."""

    what = "checkpoint"

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = Path(path)
        self.problem = " ".join(str(problem).split())  # one line, whatever an inner error printed
        super().__init__(f"{self.what} {self.path}: {self.problem}")

    def __reduce__(self):  # picklable across processes (the music bench) despite the two-argument init
        return type(self), (self.path, self.problem)


class AdapterError(CheckpointError):
    """A LoRA adapter directory that cannot be used (unreadable, unsupported, or not fitting the base)."""

    what = "adapter"
