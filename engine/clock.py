"""Clocks injected into every timed part: `MonotonicClock` for a jam, `FakeClock` for tests and simulation."""
from __future__ import annotations

import threading
import time
from typing import Protocol

NS_PER_S = 1_000_000_000


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def wait_until(self, deadline_ns: int, wake: threading.Event | None = None) -> bool:
        """Block until `deadline_ns` or until `wake` is set; True if the deadline was reached."""
        ...


class MonotonicClock:
    """The real clock: `time.monotonic_ns`, sleeping until close to a deadline, then spinning.

    `spin_ns` is how long before a deadline the sleeper wakes to spin; the OS wakes
    sleeping threads late by a fraction of a millisecond, the spin takes that up.
    """

    def __init__(self, spin_ns: int = 1_000_000) -> None:
        self.spin_ns = spin_ns

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def wait_until(self, deadline_ns: int, wake: threading.Event | None = None) -> bool:
        now = time.monotonic_ns()
        remaining = deadline_ns - now
        if remaining > self.spin_ns:
            timeout_s = (remaining - self.spin_ns) / NS_PER_S
            if wake is not None:
                if wake.wait(timeout_s):
                    return False
            else:
                time.sleep(timeout_s)
        while time.monotonic_ns() < deadline_ns:
            if wake is not None and wake.is_set():
                return False
            # Give the GIL away while spinning so a busy Python thread cannot starve us later.
            time.sleep(0)
        return True


class FakeClock:
    """Virtual time for tests and `simulate`: it moves only when told to.

    `wait_until` jumps straight to the deadline, so a single-threaded loop over a fake
    clock runs as fast as the CPU allows.
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        return self._now_ns

    def set(self, t_ns: int) -> None:
        with self._lock:
            if t_ns < self._now_ns:
                raise ValueError(f"FakeClock cannot go back from {self._now_ns} to {t_ns}")
            self._now_ns = t_ns

    def advance(self, dt_ns: int) -> int:
        with self._lock:
            self._now_ns += dt_ns
            return self._now_ns

    def advance_s(self, dt_s: float) -> int:
        return self.advance(round(dt_s * NS_PER_S))

    def wait_until(self, deadline_ns: int, wake: threading.Event | None = None) -> bool:
        if wake is not None and wake.is_set():
            return False
        with self._lock:
            if deadline_ns > self._now_ns:
                self._now_ns = deadline_ns
        return True


def s_to_ns(t_s: float) -> int:
    return round(t_s * NS_PER_S)


def ns_to_s(t_ns: int) -> float:
    return t_ns / NS_PER_S
