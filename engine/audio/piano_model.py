"""Transkun 2.0, the piano transcription model whose weights ship in the transkun wheel: built
from the wheel's config, its weights read with `torch.load(weights_only=True)` (no pickled code
runs) and checked key by key, and run over a recording segment by segment."""
from __future__ import annotations

import contextlib
import json
import logging
import math
import warnings
from dataclasses import dataclass
from importlib import resources
from typing import Callable, Iterator

from engine.audio.extra import require

log = logging.getLogger(__name__)

MODEL_NAME = "transkun 2.0"
PEDAL_CONTROLS = (64, 67)  # the model's pedal "notes" come out as pitch -64 (sustain) and -67 (soft)


@dataclass(frozen=True, slots=True)
class Segmenting:
    """How a recording is cut for the model: windows of `window_s` every `hop_s` seconds, the
    model's state carried from one window to the next. Windows end to end (the default) decode each
    second once; OVERLAPPED, the model's own setting, decodes it twice, for about 1.5 points more
    onset F1 on rendered piano (docs in README.md, "Audio in and out")."""

    window_s: float = 16.0
    hop_s: float = 16.0


OVERLAPPED = Segmenting(16.0, 8.0)


class PianoModel:
    """The loaded model on `device` ("cpu", "cuda"): `transcribe(samples)` for float32 samples
    `(frames, channels)` at `sample_rate`. Load once, use for many files, from one thread."""

    def __init__(self, device: str = "cpu") -> None:
        torch = require("torch", "transcription")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # its torch.jit.script
            model_module = require("transkun.ModelTransformer", "transcription")
        root = resources.files("transkun") / "pretrained"
        config = model_module.Config()
        config.__dict__.update(json.loads((root / "2.0.conf").read_text())["Model"]["config"])
        with _without_torchaudio(model_module):
            model = model_module.TransKun(conf=config)
        with resources.as_file(root / "2.0.pt") as weights_path:
            checkpoint = torch.load(weights_path, map_location="cpu", weights_only=True)
        # strict: every tensor the model has comes from the file, the mel filter bank included
        model.load_state_dict(checkpoint["state_dict"], strict=True)
        self.model = model.eval().to(device)
        self.device = device
        self.sample_rate = int(config.fs)

    def transcribe(self, samples, segmenting: Segmenting = Segmenting(),
                   on_progress: Callable[[float, float], None] | None = None) -> list:
        """The model's notes (objects with start, end, pitch, velocity; pedals have pitch -64/-67)
        for `samples (frames, channels)`; `on_progress(seconds done, seconds)` after each window.
        Sets torch's thread count (process-wide) while it runs, and puts it back."""
        import torch

        duration_s = samples.shape[0] / self.sample_rate
        model = self.model
        # the same arithmetic as TransKun.transcribe, to count its windows
        hop_samples = math.ceil(segmenting.hop_s * model.fs / model.hopSize) * model.hopSize
        padded = samples.shape[0] + 2 * math.ceil((segmenting.window_s - segmenting.hop_s) * model.fs)
        windows = max(1, math.ceil(padded / hop_samples))
        done = 0
        frames, network = model.transcribeFrames, model.processFramesBatch
        threads = torch.get_num_threads()

        def counted(*args, **kwargs):
            nonlocal done
            result = frames(*args, **kwargs)
            done += 1
            if on_progress is not None:
                on_progress(min(duration_s, duration_s * done / windows), duration_s)
            return result

        def on_all_threads(*args, **kwargs):
            torch.set_num_threads(threads)
            try:
                return network(*args, **kwargs)
            finally:
                torch.set_num_threads(1)

        # Instance attributes: the class is untouched. The network's big products use every thread;
        # the rest (the CRF's Viterbi: ~700 small steps a window) runs on one, as thread handoffs
        # cost more than such steps (measured: 0.24 s against 2.3-10 s a window on two busy cores).
        model.transcribeFrames, model.processFramesBatch = counted, on_all_threads
        torch.set_num_threads(1)
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                # transkun wraps its layers in torch.utils.checkpoint, which warns at inference
                warnings.filterwarnings("ignore", message=".*use_reentrant.*")
                warnings.filterwarnings("ignore", message=".*None of the inputs have requires_grad.*")
                x = torch.from_numpy(samples).to(self.device)
                return model.transcribe(x, stepInSecond=segmenting.hop_s, segmentSizeInSecond=segmenting.window_s)
        finally:
            del model.transcribeFrames, model.processFramesBatch
            torch.set_num_threads(threads)


@contextlib.contextmanager
def _without_torchaudio(model_module) -> Iterator[None]:
    """Transkun computes its mel filter bank with torchaudio when the model is built, and the
    checkpoint stores that bank; torchaudio's wheel pins another torch, so the bank starts as zeros
    here and comes from the checkpoint (loaded strictly). Only while the model is built."""
    import torch
    from torch import nn

    original = model_module.MelSpectrum

    class MelSpectrum(original):
        def __init__(self, windowSize, f_min, f_max, n_mels, fs, nExtraWins=0, log=False, eps=1e-5,
                     toMono=False):
            nn.Module.__init__(self)
            self.outputDim = n_mels
            self.nChannel = nExtraWins + 1
            self.register_buffer("freq2mels", torch.zeros(windowSize // 2 + 1, n_mels))
            self.log = log
            self.eps = eps
            self.spectrogramExtractor = model_module.Spectrum(windowSize, nExtraWins)
            self.toMono = toMono

    model_module.MelSpectrum = MelSpectrum
    try:
        yield
    finally:
        model_module.MelSpectrum = original
