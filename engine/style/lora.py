"""LoRA and QLoRA on the base model: the peft model to train (the base in fp32, or in bitsandbytes
4-bit nf4), and its adapter saved and restored as safetensors + JSON only."""
from __future__ import annotations

import enum
import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.model.adapters import ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, TARGETS, WHOLE_MODULES
from engine.model.checkpoint import load_hf_checkpoint, read_meta

log = logging.getLogger(__name__)
# peft imports bitsandbytes when it is installed; on a CPU it logs, at every start, that an optional
# faster 4-bit kernel package is missing: nothing a user of plain LoRA (or of QLoRA) can act on.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

class TrainError(Exception):
    """A style cannot be trained as asked; `str()` is one line naming the thing (a file list, the
    device, a missing package, an existing style)."""


class Method(enum.StrEnum):
    LORA = "lora"    # the base in fp32, low-rank adapters trained on top
    QLORA = "qlora"  # the base in 4-bit nf4 (bitsandbytes): the memory-saving path on CUDA


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 8
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.0  # a style sees each augmented window about once: dropout would only cost time
    target_modules: tuple[str, ...] = TARGETS  # every projection: attention and the SwiGLU MLP
    # Trained whole and saved with the adapter (peft's modules_to_save): the RMS norms and the token
    # embedding (tied to the output head), 74 k weights that let a style move how loud, how long
    # and which notes it favours; on unseen pianists they fit held-out playing better (README).
    whole_modules: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm", "norm", "embed_tokens")

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise TrainError(f"LoRA rank must be positive, got {self.rank}")
        if self.alpha <= 0:
            raise TrainError(f"LoRA alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise TrainError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        unknown = sorted(set(self.target_modules) - set(TARGETS))
        if unknown or not self.target_modules:
            raise TrainError(f"LoRA target modules must be among {', '.join(TARGETS)}, got {unknown or 'none'}")
        unknown = sorted(set(self.whole_modules) - set(WHOLE_MODULES))
        if unknown:
            raise TrainError(f"modules trained whole must be among {', '.join(WHOLE_MODULES)}, got {unknown}")


def base_model(path: Path, method: Method, device: torch.device):
    """(transformers Llama of the checkpoint at `path`, its meta), frozen, on `device`: fp32 for
    LoRA; for QLoRA its projections in 4-bit nf4 (computing in bf16 on CUDA, fp32 on the CPU)."""
    if method is Method.LORA:
        model, meta = load_hf_checkpoint(path)
        return model.to(device).requires_grad_(False), meta
    try:
        import bitsandbytes  # noqa: F401 - transformers needs it for the 4-bit layers
    except ImportError as exc:
        raise TrainError(f"QLoRA needs bitsandbytes (pip install 'bitsandbytes>=0.45'): {exc}") from exc
    from transformers import BitsAndBytesConfig, LlamaForCausalLM

    meta = read_meta(path)  # the same one-line CheckpointError as LoRA for a broken checkpoint
    compute = torch.bfloat16 if device.type == "cuda" else torch.float32
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)
    model = LlamaForCausalLM.from_pretrained(str(path), quantization_config=quantization, device_map={"": device},
                                             dtype=torch.float32)  # norms and embeddings stay fp32
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            # bitsandbytes repacks 4-bit weights for an inference-only CPU kernel the first time a
            # layer runs in eval mode, and keeps them so: training after a validation pass would
            # then get no gradient through the base's layers, only into the last adapters.
            module.support_avx512bf16_for_cpu = False
    return model.requires_grad_(False), meta


def add_lora(model, settings: LoraSettings, seed: int = 0):
    """`model` with LoRA adapters (peft), only they trainable; the same seed gives the same
    initial adapters (every process of a distributed run starts equal)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    # ensure_weight_tying: the shipped model's output head is its embedding; trained whole, the two
    # stay one weight (else peft would train a copy of each and untie them).
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules), bias="none", task_type="CAUSAL_LM",
                        modules_to_save=list(settings.whole_modules) or None,
                        ensure_weight_tying=bool(settings.whole_modules)
                        and bool(getattr(model.config, "tie_word_embeddings", False)))
    with warnings.catch_warnings():  # peft asks transformers 5 a deprecated question; nothing to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    log.info("LoRA rank %d on %s, %s whole: %d trainable parameters", settings.rank,
             ", ".join(settings.target_modules), ", ".join(settings.whole_modules) or "nothing", trainable)
    return peft_model


def save_adapter(peft_model, directory: Path, base: Path | None = None) -> Path:
    """Write `adapter_config.json` + `adapter_model.safetensors` into `directory` (each file
    replaced atomically; peft's own README is left out). `base` is recorded in the config."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / ".adapter-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if base is not None:
        for config in peft_model.peft_config.values():
            config.base_model_name_or_path = str(base)
    peft_model.save_pretrained(str(tmp), safe_serialization=True)
    for name in (ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE):
        os.replace(tmp / name, directory / name)
    shutil.rmtree(tmp, ignore_errors=True)
    return directory


def load_adapter_weights(peft_model, directory: Path) -> None:
    """Put the adapter weights saved in `directory` back into `peft_model` (a resumed run)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    device = next(p for p in peft_model.parameters() if p.requires_grad).device
    weights = load_file(str(Path(directory) / ADAPTER_WEIGHTS_FILE), device=str(device))
    result = set_peft_model_state_dict(peft_model, weights)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise TrainError(f"adapter {directory} does not fit this model: unexpected {unexpected[0]}")


def trainable_parameters(peft_model) -> list[torch.nn.Parameter]:
    """The adapter's parameters, in a fixed order (the optimizer's checkpoint relies on it)."""
    return [p for _name, p in sorted(peft_model.named_parameters()) if p.requires_grad]

