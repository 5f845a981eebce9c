"""Helpers of the style-training tests: a tiny base, a corpus a model learns in a few steps, and a
run's settings small enough for a test."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mido
import torch

from engine.style.lora import LoraSettings
from engine.style.settings import StyleConfig
from engine.style.train import StyleRun
from engine.training.data import ExampleConfig
from engine.training.loop import LoopConfig


def tiny_base(path: Path) -> Path:
    """A tiny random base with the real tokenizer at `path`; 64 wide, as bitsandbytes' CPU 4-bit
    kernels need rows of at least one 64-weight block."""
    from engine.model.checkpoint import new_hf_model, save_checkpoint
    from engine.model.config import ModelConfig
    from engine.tokens.tokenizer import JamTokenizer

    tokenizer = JamTokenizer()
    config = ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_embd=64, n_head=2, n_kv_head=2,
                         intermediate_size=128, max_len=128)
    save_checkpoint(path, new_hf_model(config, seed=0), tokenizer.to_dict())
    return path


def write_riff(path: Path, shift: int, seconds: float = 24.0) -> Path:
    """An arpeggio C-E-G-C (moved by `shift` semitones) in sixteenths at 120 BPM: a corpus a model
    learns in a few steps."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500_000))
    for i in range(int(seconds / 0.25)):
        pitch = (60, 64, 67, 72)[i % 4] + shift
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=240))
    midi.save(path)
    return path


def write_riffs(folder: Path) -> list[Path]:
    """Five riffs a semitone apart: `start` trains on the first four and validates on the fifth."""
    return [write_riff(folder / f"riff{i}.mid", shift=i) for i in range(5)]


def tiny_config(**loop) -> StyleConfig:
    return StyleConfig(lora=LoraSettings(rank=4, alpha=8, dropout=0.0),
                       examples=ExampleConfig(seq_len=64, window_s=4.0, stride_s=2.0, copies=2),
                       loop=replace(LoopConfig(max_steps=20, batch_size=4, lr=1e-2, min_lr=1e-3, warmup_steps=2,
                                               weight_decay=0.0, eval_every=5, eval_batches=4, patience=10), **loop),
                       replay_share=0.25, replay_samples=3)


def start(riffs, out: Path, base: Path, config: StyleConfig | None = None, **kwargs) -> StyleRun:
    kwargs.setdefault("base_corpus", out.parent / "no-corpus")
    return StyleRun(riffs[:4], riffs[4:], out, config or tiny_config(), base=base, **kwargs)


def assert_every_adapter_learned(tensors: dict[str, torch.Tensor], n_layer: int) -> None:
    """Each projection's B started at zero: a B still zero got no gradient through the layers above."""
    b = {k: v for k, v in tensors.items() if ".lora_B." in k}
    assert len(b) == 7 * n_layer
    still_zero = sorted(k for k, v in b.items() if not v.abs().max() > 0)
    assert still_zero == []


def logits_of(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]
