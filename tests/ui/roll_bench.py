"""What the piano roll costs: `python -m tests.ui.roll_bench` prints the time to read one
snapshot of a dense jam (with chord, key and tempo, every few frames) and draw one frame of it
at a few sizes, then the output scheduler's send lateness (`engine.offline.bench.bench_scheduler`) without and with the roll drawing
beside it in the same process at its rate, as the console would."""
from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

from textual.geometry import Size

from engine.duet.heard import HeardNotes
from engine.events import AI, Note, note_off, note_on
from engine.model.config import DEFAULT_MODEL_DIR
from engine.offline.bench import bench_scheduler
from engine.presets.schema import Preset
from engine.realtime import quiet_the_interpreter
from jamtui.bridge import HEARD_PAST_S, LISTEN_EVERY, POLL_INTERVAL_S
from jamtui.widgets.piano_roll import PianoRoll
from tests.ui.rig import Rig, make_app, start

NOTES_PER_S = 20  # per player: a fast pianist, and an AI as busy
SECONDS = 12.0
SIZES = (Size(42, 4), Size(82, 14), Size(196, 30))  # the roll at 80x24, at 120x40, on a wide screen


def dense_jam() -> tuple[HeardNotes, list[Note], float]:
    """HeardNotes fed both players at NOTES_PER_S for SECONDS, and the AI's part written 1 s ahead."""
    heard = HeardNotes()
    step_ns = round(1e9 / NOTES_PER_S)
    for i in range(int(SECONDS * NOTES_PER_S)):
        t_ns = i * step_ns
        for player, pitch in (("performer", 40 + i * 7 % 40), ("ai", 50 + i * 5 % 30)):
            heard.record(player, note_on(t_ns, pitch, 30 + i * 13 % 97))
            heard.record(player, note_off(t_ns + 3 * step_ns, pitch))
    now_s = SECONDS
    ahead = [Note(now_s + k / NOTES_PER_S, now_s + k / NOTES_PER_S + 0.2, 60 + k % 12, 80, AI)
             for k in range(NOTES_PER_S)]
    return heard, ahead, now_s


def frame_ms(frames: int = 200) -> dict[str, float]:
    heard, ahead, now_s = dense_jam()
    out = {}
    t0 = time.perf_counter()
    for _ in range(frames):
        recent = heard.recent(now_s - HEARD_PAST_S, now_s, ahead, listen=False)
    out["snapshot_ms"] = (time.perf_counter() - t0) * 1000 / frames
    t0 = time.perf_counter()
    for _ in range(frames // 10):
        heard.recent(now_s - HEARD_PAST_S, now_s, ahead)
    out[f"snapshot_listening_ms (every {LISTEN_EVERY}th)"] = (time.perf_counter() - t0) * 1000 / (frames // 10)
    out["notes_in_snapshot"] = len(recent.performer) + len(recent.ai_sounded) + len(recent.ai_ahead)
    roll = PianoRoll()
    for size in SIZES:
        t0 = time.perf_counter()
        for i in range(frames):
            roll.show(recent)
            roll._strips(size)  # what render_line draws from, once a frame
        out[f"draw_{size.width}x{size.height}_ms"] = (time.perf_counter() - t0) * 1000 / frames
    return out


class RollLoad:
    """A thread that reads a snapshot and draws a frame at the bridge's poll rate (what the console does)."""

    def __init__(self) -> None:
        self.heard, self.ahead, self.now_s = dense_jam()
        self.roll = PianoRoll()
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(POLL_INTERVAL_S):
            listen = self.frames % LISTEN_EVERY == 0
            self.roll.show(self.heard.recent(self.now_s - HEARD_PAST_S, self.now_s, self.ahead, listen=listen))
            self.roll._strips(SIZES[1])
            self.frames += 1

    def __enter__(self) -> RollLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def lateness(rounds: int = 2, n_events: int = 4000) -> dict[str, list[float]]:
    """Send lateness p50/p99 (ms) per round, without the roll and with it, alternating."""
    out: dict[str, list[float]] = {"without_p50": [], "without_p99": [], "with_p50": [], "with_p99": []}
    for _ in range(rounds):
        for name in ("without", "with"):
            if name == "with":
                with RollLoad() as load:
                    figures = bench_scheduler(n_events, load=False)
                assert load.frames > 0
            else:
                figures = bench_scheduler(n_events, load=False)
            out[f"{name}_p50"].append(round(figures["send_lateness_ms_p50"], 3))
            out[f"{name}_p99"].append(round(figures["send_lateness_ms_p99"], 3))
    return out


async def console_lateness(show_roll: bool, seconds: float = 12.0) -> dict[str, float]:
    """The console playing live (the shipped model, continuous, a performer at 8 notes/s) at
    120x40 with the roll shown or hidden: the output's send lateness and the roll's frames."""
    from engine.model.load import load_model  # brings torch: only for this part

    rig = Rig()
    model = load_model(DEFAULT_MODEL_DIR)
    app = make_app(rig, Path(tempfile.mkdtemp()), model, preset=Preset(mode="continuous"))
    async with app.run_test(size=(120, 40)) as pilot:
        await start(app, pilot)
        roll = app.screen.query_one(PianoRoll)
        roll.display = show_roll
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            pitch = 48 + i * 7 % 36
            rig.play((0x90, pitch, 40 + i * 13 % 80))
            await pilot.pause(0.1)
            rig.play((0x80, pitch, 0))
            await pilot.pause(0.025)
            i += 1
        stats = app.bridge.jam.output_stats()
        frames = roll.frames
        await pilot.press("q")
    return {"frames": frames, "sent": stats.sent, "lateness_ms_p50": round(stats.lateness_ms_p50, 3),
            "lateness_ms_p99": round(stats.lateness_ms_p99, 3), "lateness_ms_max": round(stats.lateness_ms_max, 3)}


if __name__ == "__main__":
    import asyncio
    import sys

    quiet_the_interpreter()  # as a live jam does (`Jam.start`): short GIL slices
    for key, value in frame_ms().items():
        print(f"{key:24} {value:.3f}" if isinstance(value, float) else f"{key:24} {value}")
    figures = lateness()
    for key, values in figures.items():
        print(f"lateness_{key:16} {values}  median {statistics.median(values):.3f} ms")
    if "--console" in sys.argv:
        for show in (False, True, False, True):
            print(f"console, roll {'shown ' if show else 'hidden'}", asyncio.run(console_lateness(show)))
