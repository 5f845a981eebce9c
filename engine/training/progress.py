"""Progress for long steps: a tqdm bar with ETA in a terminal (none in a pipe), or one JSON line per step
with `--json`."""
from __future__ import annotations

import json
import sys
import time
from typing import Any


class Progress:
    """`update(n, **fields)` advances the bar, or prints `{"step": ..., "total": ..., ...}` lines.

    JSON lines go to stdout (the training screen reads them); bars go to stderr.
    """

    def __init__(self, total: int | None, desc: str, *, json_lines: bool = False, initial: int = 0) -> None:
        self.total = total
        self.desc = desc
        self.json_lines = json_lines
        self.done = initial
        self._start = time.monotonic()
        self._start_done = initial
        self._bar = None
        if not json_lines:
            from tqdm import tqdm

            # disable=None: no bar when stderr is not a terminal (a pipe, a log), as the other commands
            self._bar = tqdm(total=total, desc=desc, initial=initial, file=sys.stderr, dynamic_ncols=True, disable=None)

    def update(self, n: int = 1, **fields: Any) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            if fields:
                self._bar.set_postfix({k: _short(v) for k, v in fields.items()}, refresh=False)
            return
        elapsed_s = time.monotonic() - self._start
        rate = (self.done - self._start_done) / elapsed_s if elapsed_s > 0 else 0.0
        eta_s = (self.total - self.done) / rate if self.total and rate > 0 else None
        line = {"event": self.desc, "step": self.done, "total": self.total,
                "elapsed_s": round(elapsed_s, 2), "eta_s": None if eta_s is None else round(eta_s, 1)}
        line.update(fields)
        print(json.dumps(line), flush=True)

    def note(self, **fields: Any) -> None:
        """A one-off event line (JSON mode) or a message above the bar."""
        if self._bar is not None:
            self._bar.write(" ".join(f"{k}={_short(v)}" for k, v in fields.items()))
        else:
            print(json.dumps({"event": self.desc, **fields}), flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _short(value: Any) -> Any:
    return f"{value:.4g}" if isinstance(value, float) else value
