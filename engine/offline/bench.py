"""Benchmarks behind `jamtui bench`: figures measured on this machine, returned as a flat dict."""
from __future__ import annotations

import importlib.util
import logging
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from engine.audio.measure import measure, write_passage
from engine.audio.render import RenderError, find_soundfont
from engine.audio.transcribe import Transcriber
from engine.clock import MonotonicClock
from engine.midi.memory import MemoryOutputPort
from engine.midi.scheduler import OutputScheduler
from engine.model.adapters import write_random_adapter

log = logging.getLogger(__name__)
MS = 1_000_000


class TorchLoad:
    """A thread that keeps the CPU busy with torch matrix products, as model inference would."""

    def __init__(self, size: int = 384, threads: int | None = None) -> None:
        self.size = size
        self.threads = threads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.flops = 0.0
        self.elapsed_s = 0.0

    def __enter__(self) -> TorchLoad:
        import torch

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        self.threads = torch.get_num_threads()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="bench-load", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def _run(self, ready: threading.Event) -> None:
        import torch

        a = torch.randn(self.size, self.size)
        b = torch.randn(self.size, self.size)
        ready.set()
        start = time.perf_counter()
        count = 0
        while not self._stop.is_set():
            a = torch.tanh(a @ b)  # small Python work between products, like a decode loop
            count += 1
        self.elapsed_s = time.perf_counter() - start
        self.flops = 2.0 * self.size**3 * count

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def gflops(self) -> float:
        return self.flops / self.elapsed_s / 1e9 if self.elapsed_s else 0.0


def bench_scheduler(
    n_events: int = 6000,
    events_per_s: float = 800.0,
    *,
    load: bool = True,
    load_threads: int | None = 1,
    chunk_s: float = 0.25,
    seed: int = 0,
    port=None,
) -> dict[str, float | int | str]:
    """Send `n_events` timed events through the real scheduler thread and measure lateness.

    Events come as notes (on + off) and pedal changes, partly in chords, posted a chunk at
    a time from this thread the way the generator will post them, while `TorchLoad`
    keeps the CPU busy. Lateness = time of the port send minus the deadline.
    """
    rng = random.Random(seed)
    clock = MonotonicClock()
    port = port or MemoryOutputPort(clock, name="memory (no port)")
    # No drops in the bench: every event's lateness is measured.
    scheduler = OutputScheduler(port, clock, late_drop_ms=10_000)
    spacing_ns = round(1e9 / events_per_s)
    plan: list[tuple[int, int, int, int]] = []  # (on_offset_ns, off_offset_ns, pitch, velocity)
    t_ns = 0
    while len(plan) * 2 < n_events:
        chord = rng.choice((1, 1, 2, 3))
        for _ in range(chord):
            plan.append((t_ns, t_ns + rng.randint(30, 400) * MS, rng.randint(36, 96), rng.randint(30, 110)))
        t_ns += spacing_ns * 2 * chord
    load_ctx = TorchLoad(threads=load_threads) if load else None
    if load_ctx is not None:
        load_ctx.__enter__()
    try:
        scheduler.start()
        start_ns = clock.now_ns() + 100 * MS
        end_ns = start_ns + max(off for _, off, _, _ in plan)
        index = 0
        while index < len(plan) or scheduler.next_deadline_ns() is not None:
            horizon_ns = clock.now_ns() + round(chunk_s * 2 * 1e9)
            while index < len(plan) and start_ns + plan[index][0] <= horizon_ns:
                on, off, pitch, velocity = plan[index]
                scheduler.schedule_note(start_ns + on, start_ns + off, pitch, velocity)
                index += 1
            time.sleep(chunk_s)
            if clock.now_ns() > end_ns + 5_000 * MS:
                break
        # Read before stop: the silence at stop is not part of the schedule.
        summary = scheduler.lateness.summary_ms("send_lateness")
        stats = scheduler.stats()
    finally:
        scheduler.stop()
        if load_ctx is not None:
            load_ctx.__exit__(None, None, None)
    result: dict[str, float | int | str] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "port": port.name,
        "scheduled_events": len(plan) * 2,
        "sent_events": stats.sent,
        "dropped_late": stats.dropped_late,
        "load": f"torch matmul, {load_ctx.threads} thread(s)" if load_ctx else "none",
        "load_gflops": round(load_ctx.gflops, 2) if load_ctx else 0.0,
        "scheduler_priority": scheduler.priority,
    }
    result.update({k: v for k, v in summary.items() if not k.endswith("_count")})
    return result


def bench_adapter(model_path: Path, *, rank: int = 8, tokens: int = 300, context_tokens: int = 330,
                  seed: int = 0) -> dict[str, float | int]:
    """Decode time per token (fp32 CPU, one thread) of the checkpoint at `model_path` with a
    random rank-`rank` LoRA adapter on every linear merged in, against without: merging changes
    no shape, so the two should be equal. Rounds alternate so a busy machine slows both alike."""
    import torch

    from engine.model.bench import time_decodes
    from engine.model.checkpoint import load_checkpoint, read_meta

    config = read_meta(model_path).config
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="jamtui-bench-lora-") as tmp:
            adapter = write_random_adapter(Path(tmp) / f"rank{rank}", config, rank=rank, seed=seed)
            base = load_checkpoint(model_path).model
            styled = load_checkpoint(model_path, adapters=[(adapter, 1.0)]).model
        ids = torch.randint(0, config.vocab_size, (context_tokens,), generator=torch.Generator().manual_seed(seed))
        base_ms: list[float] = []
        styled_ms: list[float] = []
        rounds = 4
        for _ in range(rounds):
            base_ms += time_decodes(base, ids, tokens // rounds)
            styled_ms += time_decodes(styled, ids, tokens // rounds)
    finally:
        torch.set_num_threads(threads)
    base_p50, styled_p50 = statistics.median(base_ms), statistics.median(styled_ms)
    return {"adapter_rank": rank, "adapter_decode_tokens": len(styled_ms),
            "decode_ms_p50_no_adapter": round(base_p50, 4), "decode_ms_p50_with_adapter": round(styled_p50, 4),
            "adapter_decode_ratio": round(styled_p50 / base_p50, 3)}


def bench_lora_train(model_path: Path, *, rank: int = 8, seq_len: int = 512, batch_size: int = 8, steps: int = 3,
                     device: str = "cpu", threads: int = 1, seed: int = 0) -> float:
    """Training tokens per second of LoRA (rank `rank`, the style run's optimizer and loss) on the
    checkpoint at `model_path`: `steps` timed steps of `batch_size` random windows of `seq_len`
    tokens, after one untimed warm-up step. On the CPU with `threads` torch threads (1, as the
    decode rows: the figure then compares across machines and does not fight the load)."""
    import torch

    from engine.model.checkpoint import read_meta
    from engine.style.lora import LoraSettings, Method, add_lora, base_model, trainable_parameters
    from engine.tokens.tokenizer import JamTokenizer
    from engine.training.loop import lm_loss

    meta = read_meta(model_path)
    pad_id = JamTokenizer.from_dict(meta.tokenizer).pad_id
    torch_device = torch.device(device)
    sync = torch.cuda.synchronize if torch_device.type == "cuda" else (lambda: None)
    saved_threads = torch.get_num_threads()
    if torch_device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        model, _ = base_model(model_path, Method.LORA, torch_device)
        model = add_lora(model, LoraSettings(rank=rank, alpha=2.0 * rank), seed=seed)
        params = trainable_parameters(model)
        optimizer = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.0)
        generator = torch.Generator().manual_seed(seed)
        # Random ids, pad excluded: every position is a target, as in a full window.
        shape = (steps + 1, batch_size, seq_len + 1)
        windows = torch.randint(0, meta.config.vocab_size - 1, shape, generator=generator)
        windows[windows >= pad_id] += 1
        model.train()
        started = 0.0
        for step in range(steps + 1):
            if step == 1:  # the first step allocates and warms the kernels: not timed
                sync()
                started = time.perf_counter()
            loss, _count = lm_loss(model, windows[step], pad_id)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        sync()
        elapsed_s = time.perf_counter() - started
    finally:
        torch.set_num_threads(saved_threads)
    return steps * batch_size * seq_len / elapsed_s


def bench_training(model_path: Path) -> dict[str, float | int | str]:
    """The LoRA training rows: on the CPU, and on CUDA when there is a GPU."""
    import torch

    rank, seq_len, batch_size = 8, 512, 8
    result: dict[str, float | int | str] = {
        "lora_train": f"rank {rank}, {batch_size} x {seq_len} tokens a step, CPU on 1 thread",
        "lora_train_tokens_per_s": round(bench_lora_train(model_path, rank=rank, seq_len=seq_len,
                                                          batch_size=batch_size), 1)}
    if torch.cuda.is_available():
        result["lora_train_tokens_per_s_cuda"] = round(bench_lora_train(
            model_path, rank=rank, seq_len=seq_len, batch_size=batch_size, steps=10, device="cuda"), 1)
    return result


def transcription_ready() -> bool:
    """Whether the audio extra (engine.audio) is installed with a soundfont, so the transcription rows run."""
    if any(importlib.util.find_spec(m) is None for m in ("transkun", "soundfile", "fluidsynth", "mir_eval")):
        return False
    try:
        find_soundfont()
    except RenderError:
        return False
    return True


def bench_transcription(*, seconds: float = 14.0, seed: int = 0) -> dict[str, float | int | str]:
    """The transcription rows: a seeded piano passage (engine.audio.measure.write_passage) rendered
    with the piano soundfont, transcribed back by the piano model and scored with mir_eval; speed
    in seconds of audio per second of compute, on the CPU and on CUDA when there is a GPU.
    `scripts/audio-bench` gives the figures on the corpus's held-out performances."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # a transcription uses the machine, not the live engine's one thread
    try:
        return _transcription_rows(seconds, seed)
    finally:
        torch.set_num_threads(threads)


def _transcription_rows(seconds: float, seed: int) -> dict[str, float | int | str]:
    """`bench_transcription`'s rows, with torch's threads set."""
    import torch

    result: dict[str, float | int | str] = {}
    with tempfile.TemporaryDirectory(prefix="jamtui-bench-audio-") as tmp:
        passage = Path(tmp) / "passage.mid"
        write_passage(passage, seconds, seed)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            transcriber = Transcriber(device)
            transcriber.model  # noqa: B018 - loading is not part of the speed
            measured = measure([passage], transcriber, find_soundfont(), clip_s=seconds)
            suffix = "" if device == "cpu" else f"_{device}"
            if device == "cpu":
                accuracy = measured.accuracy
                result.update({"transcription": f"transkun 2.0, {seconds:g} s piano passage rendered by FluidSynth, "
                                                 f"CPU on {torch.get_num_threads()} thread(s)",
                               "transcription_onset_f1": round(accuracy.onset_f1, 4),
                               "transcription_onset_offset_f1": round(accuracy.onset_offset_f1, 4),
                               "transcription_velocity_f1": round(accuracy.velocity_f1, 4)})
            result[f"transcription_x_real_time{suffix}"] = round(measured.speed_x, 3)
    return result


def run_all(*, n_events: int = 6000, load: bool = True, load_threads: int | None = 1, port=None,
            model=None, tokenizer=None, preset=None, cues: int = 20,
            model_path: Path | None = None, transcription: bool | None = None,
            on_progress: Callable[[float, float], None] | None = None) -> dict[str, float | int | str]:
    """Every benchmark this build has, in one flat dict. `port`: a real output to send through;
    `model`: the live model for the model rows (context of 10 s of music, 2 s chunks); with
    `tokenizer` and `preset` too, the live duet rows (`cues` phrase ends; 0 skips them);
    `model_path`: its checkpoint, for the rows with and without a rank-8 adapter merged and the
    LoRA training rows; `transcription`: the transcription rows (None: with the model rows, when
    the audio extra is installed). `on_progress(stages done, stages)` is called as each stage ends."""
    duet = model is not None and tokenizer is not None and preset is not None and cues > 0
    if transcription is None:  # with the model rows (not a scheduler-only run) when the extra is there
        transcription = model is not None and transcription_ready()
    stages = 1 + (model is not None) + 2 * (model_path is not None) + duet + transcription
    done = 0

    def stage_done() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, stages)

    result = bench_scheduler(n_events, load=load, load_threads=load_threads, port=port)
    stage_done()
    if model is not None:
        from engine.model.bench import bench_model

        # 10 s of context at the corpus' measured ~33 tokens/s (docs/tokens.md), 2 s chunks.
        tokens_per_s = 33.0
        rows = bench_model(model, context_tokens=round(10 * tokens_per_s), chunk_tokens=round(2 * tokens_per_s),
                           tokens_per_s_of_music=tokens_per_s)
        result.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows.items()})
        stage_done()
    if model_path is not None:
        result.update(bench_adapter(Path(model_path)))
        stage_done()
    if duet:
        from engine.offline.bench_jam import bench_jam

        # `model` has the preset's styles merged already: the duet plays it as it is.
        plain = replace(preset, model=replace(preset.model, adapters=()))
        result.update(bench_jam(model, tokenizer, plain, cues=cues))
        stage_done()
    if model_path is not None:  # last: training's allocations must not disturb the live rows above
        result.update(bench_training(Path(model_path)))
        stage_done()
    if transcription:  # after the live rows, which it would disturb
        result.update(bench_transcription())
        stage_done()
    return result
