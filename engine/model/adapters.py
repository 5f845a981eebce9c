"""LoRA adapters (a performer's styles): read from JSON and safetensors only, checked against the
base model, and merged into its weights, several at once, each with its own weight.

An adapter directory is what peft's `save_pretrained(safe_serialization=True)` writes for the
shipped `LlamaForCausalLM`: `adapter_config.json` and `adapter_model.safetensors` with tensors
`base_model.model.<module>.lora_A.weight` (r, in) and `.lora_B.weight` (out, r). Merging adds
`weight * scale * B @ A` to each module's weight (scale = alpha / r, or alpha / sqrt(r) with
rsLoRA), so the live model keeps its shapes and decodes as fast as the base. An adapter may also
carry whole small modules (peft's `modules_to_save`: the RMS norms, the token embedding and its
tied output head) as `base_model.model.<module>.weight`; merging moves each such weight from the
base's toward the adapter's by `weight` (W + weight * (saved - W)). No code from the
directory ever runs: peft is not used to load it, and pickle files are refused.
Trained styles live in `engine.user_dirs.styles_dir()/NAME/`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from engine.model.config import ModelConfig
from engine.model.errors import AdapterError
from engine.user_dirs import styles_dir

if TYPE_CHECKING:
    import torch

ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
PICKLE_FILES = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth", "adapter_model.ckpt")
MAX_WEIGHT = 2.0
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # the Llama linears
# Modules an adapter may carry whole (peft's modules_to_save): the Llama's RMS norms, the token
# embedding and the output head (tied to the embedding in the shipped model).
WHOLE_MODULES = ("input_layernorm", "post_attention_layernorm", "norm", "embed_tokens", "lm_head")
_PREFIX = "base_model.model."
_A, _B = ".lora_A.weight", ".lora_B.weight"
_W = ".weight"
# peft features that change the merge (or add weights outside it): refused when set.
_UNSUPPORTED = ("use_dora", "rank_pattern", "alpha_pattern", "layers_to_transform",
                "layers_pattern", "layer_replication", "lora_bias", "trainable_token_indices", "target_parameters",
                "use_qalora", "alora_invocation_tokens")

AdapterWeights = tuple[tuple[Path, float], ...]  # (adapter directory, weight 0-2), in the order they merge


@dataclass(frozen=True)
class AdapterConfig:
    """What `adapter_config.json` says that the merge uses."""

    rank: int
    alpha: float
    use_rslora: bool
    target_modules: tuple[str, ...]
    modules_to_save: tuple[str, ...] = ()  # of WHOLE_MODULES

    @property
    def scale(self) -> float:
        return self.alpha / (math.sqrt(self.rank) if self.use_rslora else self.rank)


@dataclass(frozen=True)
class Adapter:
    """A checked adapter: its config, its (A, B) pairs and its whole modules' weights, by module name
    of the base's state dict."""

    path: Path
    config: AdapterConfig
    pairs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]  # "model.layers.0.self_attn.q_proj" -> (A (r, in), B (out, r))
    whole: Mapping[str, torch.Tensor] = dataclasses.field(default_factory=dict)  # "model.norm" -> its weight

    @property
    def n_params(self) -> int:
        """The weights it trained: an output head saved as a copy of the tied embedding counts once."""
        embeddings = [w for module, w in self.whole.items() if module.endswith("embed_tokens")]

        def tied_copy(module: str, w: torch.Tensor) -> bool:
            return module.endswith("lm_head") and any(e.shape == w.shape and bool((e == w).all()) for e in embeddings)

        return (sum(a.numel() + b.numel() for a, b in self.pairs.values())
                + sum(w.numel() for module, w in self.whole.items() if not tied_copy(module, w)))

    @property
    def size_bytes(self) -> int:
        return (self.path / ADAPTER_WEIGHTS_FILE).stat().st_size


def adapter_weights(adapters: Sequence[tuple[str | os.PathLike, float]] | None) -> AdapterWeights:
    """`adapters` as a hashable key: absolute directories and float weights, in order."""
    return tuple((Path(path).expanduser().absolute(), float(weight)) for path, weight in adapters or ())


# -- reading ----------------------------------------------------------------------------------


def read_adapter_config(path: str | os.PathLike) -> AdapterConfig:
    """The checked `adapter_config.json` of the adapter directory `path` (no tensors read).
    Raises AdapterError naming the file and the field for anything the merge cannot honour."""
    path = Path(path)
    if not path.is_dir():
        raise AdapterError(path, "not a directory")
    file = path / ADAPTER_CONFIG_FILE
    if not file.is_file():
        raise AdapterError(path, f"missing {ADAPTER_CONFIG_FILE}")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(path, f"unreadable {ADAPTER_CONFIG_FILE}: {exc}") from exc
    if not isinstance(raw, dict):
        raise AdapterError(path, f"{ADAPTER_CONFIG_FILE} is not a JSON object")

    def bad(field: str, why: str) -> AdapterError:
        return AdapterError(path, f"{ADAPTER_CONFIG_FILE}: {field}: {why}")

    if raw.get("peft_type") != "LORA":
        raise bad("peft_type", f"{raw.get('peft_type')!r} is not supported (only LORA)")
    rank = raw.get("r")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise bad("r", f"must be a positive whole number, got {rank!r}")
    alpha = raw.get("lora_alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise bad("lora_alpha", f"must be a positive number, got {alpha!r}")
    use_rslora = raw.get("use_rslora", False)
    if not isinstance(use_rslora, bool):
        raise bad("use_rslora", f"must be true or false, got {use_rslora!r}")
    if raw.get("fan_in_fan_out", False) is not False:
        raise bad("fan_in_fan_out", f"{raw['fan_in_fan_out']!r} is not supported (Llama's linears are not Conv1D)")
    if raw.get("bias", "none") != "none":
        raise bad("bias", f"{raw['bias']!r} is not supported (only 'none')")
    for field in _UNSUPPORTED:
        value = raw.get(field)
        if not (value is None or value is False or value == [] or value == {}):
            raise bad(field, f"{value!r} is not supported")
    targets = raw.get("target_modules")
    if isinstance(targets, str):
        raise bad("target_modules", f"a pattern ({targets!r}) is not supported; list module names")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise bad("target_modules", f"must be a non-empty list of module names, got {targets!r}")
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        raise bad("target_modules", f"{unknown[0]!r} is not one of {', '.join(TARGETS)}")
    whole = raw.get("modules_to_save") or []
    if not isinstance(whole, list) or not all(isinstance(m, str) for m in whole):
        raise bad("modules_to_save", f"must be a list of module names, got {whole!r}")
    unknown = sorted(m for m in whole if m.rsplit(".", 1)[-1] not in WHOLE_MODULES)
    if unknown:
        raise bad("modules_to_save", f"{unknown[0]!r} is not one of {', '.join(WHOLE_MODULES)}")
    whole = list(dict.fromkeys(m.rsplit(".", 1)[-1] for m in whole))  # peft adds "model.embed_tokens" when tied
    return AdapterConfig(rank, float(alpha), use_rslora, tuple(targets), tuple(whole))


def read_adapter(path: str | os.PathLike) -> Adapter:
    """The checked adapter at `path`: its config and its tensors (float32), every A with its B
    and of rank r. Not yet checked against a base: `merge_adapters` does that."""
    path = Path(path)
    config = read_adapter_config(path)
    file = path / ADAPTER_WEIGHTS_FILE
    if not file.is_file():
        pickled = next((name for name in PICKLE_FILES if (path / name).is_file()), None)
        if pickled is not None:
            raise AdapterError(path, f"has {pickled}, a pickle file that could run code; jamtui reads only "
                                     f"{ADAPTER_WEIGHTS_FILE} (save_pretrained(safe_serialization=True))")
        raise AdapterError(path, f"missing {ADAPTER_WEIGHTS_FILE}")
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdapterError(path, f"unreadable {ADAPTER_WEIGHTS_FILE}: {exc}") from exc
    a_of: dict[str, torch.Tensor] = {}
    b_of: dict[str, torch.Tensor] = {}
    whole: dict[str, torch.Tensor] = {}
    # peft writes the output head of a model with tied embeddings under its own name too.
    saved = set(config.modules_to_save) | ({"lm_head"} if "embed_tokens" in config.modules_to_save else set())
    for key in sorted(state):
        tensor = state[key]
        if key.startswith(_PREFIX) and key.endswith(_W) and not key.endswith((_A, _B)):
            module = key[len(_PREFIX): -len(_W)]
            if module.rsplit(".", 1)[-1] not in saved:
                raise AdapterError(path, f"{ADAPTER_WEIGHTS_FILE}: tensor {key} is for a module that "
                                         f"{ADAPTER_CONFIG_FILE} modules_to_save does not list")
            if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
                raise AdapterError(path, f"{ADAPTER_WEIGHTS_FILE}: tensor {key} is not finite floats ({tensor.dtype})")
            whole[module] = tensor.to(torch.float32)
            continue
        if not key.startswith(_PREFIX) or not key.endswith((_A, _B)):
            raise AdapterError(path, f"{ADAPTER_WEIGHTS_FILE}: unexpected tensor {key} "
                                     f"(expected {_PREFIX}<module>{_A} and {_B}, or {_PREFIX}<module>{_W} "
                                     f"of modules_to_save)")
        module = key[len(_PREFIX): -len(_A)]
        if module.rsplit(".", 1)[-1] not in config.target_modules:
            raise AdapterError(path, f"{ADAPTER_WEIGHTS_FILE}: tensor {key} is for a module that "
                                     f"{ADAPTER_CONFIG_FILE} target_modules does not list")
        if not tensor.is_floating_point() or tensor.dim() != 2:
            raise AdapterError(path, f"{ADAPTER_WEIGHTS_FILE}: tensor {key} is not a 2-D float matrix "
                                     f"({tensor.dtype}, shape {tuple(tensor.shape)})")
        is_a = key.endswith(_A)
        if tensor.shape[0 if is_a else 1] != config.rank:
            raise AdapterError(path, f"{ADAPTER_WEIGHTS_FILE}: tensor {key} has shape {tuple(tensor.shape)}, "
                                     f"not rank r={config.rank}")
        (a_of if is_a else b_of)[module] = tensor.to(torch.float32)
    if not a_of and not b_of:
        raise AdapterError(path, f"{ADAPTER_WEIGHTS_FILE} has no LoRA tensors")
    for module in sorted(a_of.keys() ^ b_of.keys()):
        missing = _B if module in a_of else _A
        raise AdapterError(path, f"{ADAPTER_WEIGHTS_FILE}: missing tensor {_PREFIX}{module}{missing}")
    for name in config.modules_to_save:
        if not any(module.rsplit(".", 1)[-1] == name for module in whole):
            raise AdapterError(path, f"{ADAPTER_WEIGHTS_FILE}: no tensor for {name}, which {ADAPTER_CONFIG_FILE} "
                                     f"modules_to_save lists")
    return Adapter(path, config, {module: (a_of[module], b_of[module]) for module in sorted(a_of)}, whole)


# -- merging ----------------------------------------------------------------------------------


def check_weight(path: str | os.PathLike, weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= MAX_WEIGHT:
        raise AdapterError(path, f"weight must be between 0 and {MAX_WEIGHT:g}, got {weight!r}")
    return float(weight)


def check_fits(adapter: Adapter, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Every pair of `adapter` fits a weight of the base (`shapes`: state-dict name -> shape)."""
    for module, (a, b) in adapter.pairs.items():
        shape = shapes.get(module + ".weight")
        if shape is None or len(shape) != 2:
            raise AdapterError(adapter.path, f"{ADAPTER_WEIGHTS_FILE}: tensor {_PREFIX}{module}{_A} is for "
                                             f"{module}, which the base model does not have")
        out_features, in_features = shape
        for suffix, tensor, wanted in ((_A, a, (adapter.config.rank, in_features)),
                                       (_B, b, (out_features, adapter.config.rank))):
            if tuple(tensor.shape) != wanted:
                raise AdapterError(adapter.path, f"{ADAPTER_WEIGHTS_FILE}: tensor {_PREFIX}{module}{suffix} has "
                                                 f"shape {tuple(tensor.shape)} but the base's {module} {shape} "
                                                 f"needs {wanted}")
    for module, tensor in adapter.whole.items():
        shape = shapes.get(module + _W)
        if shape is None:
            raise AdapterError(adapter.path, f"{ADAPTER_WEIGHTS_FILE}: tensor {_PREFIX}{module}{_W} is for {module}, "
                                             f"which the base model does not have")
        if tuple(tensor.shape) != tuple(shape):
            raise AdapterError(adapter.path, f"{ADAPTER_WEIGHTS_FILE}: tensor {_PREFIX}{module}{_W} has shape "
                                             f"{tuple(tensor.shape)} but the base's {module} is {tuple(shape)}")


def merge_adapters(model, adapters: Sequence[tuple[str | os.PathLike | Adapter, float]]) -> None:
    """Merge `adapters` ((directory or Adapter, weight 0-2), in order) into `model`'s weights, in
    place: W += weight * scale * B @ A for each module, and for each whole module
    W += weight * (saved - W_base) (weight 0 leaves the base as it was). `model` is a
    `LlamaForCausalLM` (or anything with its parameter names; tied weights are moved once). Every
    adapter is read and checked before any weight changes. Raises AdapterError (one line)."""
    import torch

    params = dict(model.named_parameters(remove_duplicate=False))
    shapes = {name: tuple(p.shape) for name, p in params.items()}
    checked: list[tuple[Adapter, float]] = []
    for item, weight in adapters:
        adapter = item if isinstance(item, Adapter) else read_adapter(item)
        weight = check_weight(adapter.path, weight)
        check_fits(adapter, shapes)
        checked.append((adapter, weight))
    # Every change is worked out against the base's weights before any is made.
    changes = [(_deltas(adapter, params), weight) for adapter, weight in checked if weight != 0.0]
    with torch.no_grad():
        for deltas, weight in changes:
            for param, delta in deltas:
                param.add_((delta * weight).to(param.device, param.dtype))


def _deltas(adapter: Adapter, params: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """(parameter, what `adapter` at weight 1 adds to it): scale * B @ A for each LoRA pair, and
    saved - base for each module saved whole, once per parameter (tied weights, the embedding and
    the output head, must be saved alike)."""
    import torch

    with torch.no_grad():
        out = [(params[module + _W], (b @ a) * adapter.config.scale)  # (out, r) @ (r, in)
               for module, (a, b) in adapter.pairs.items()]
        whole: dict[int, tuple[Any, Any, str]] = {}
        for module, saved in adapter.whole.items():
            param = params[module + _W]
            first = whole.get(id(param))
            if first is None:
                whole[id(param)] = (param, saved, module)
            elif not bool((first[1] == saved).all()):
                raise AdapterError(adapter.path, f"{ADAPTER_WEIGHTS_FILE}: {first[2]} and {module} share one weight "
                                                 f"in the base but the adapter saves them differently")
        out += [(param, saved.to(param.device) - param.detach().float()) for param, saved, _ in whole.values()]
    return out


# -- styles (adapters in the user data dir) -----------------------------------------------------


def style_names(directory: Path | None = None) -> list[str]:
    """The trained styles: folders of the styles dir that hold an adapter config, by name."""
    directory = styles_dir() if directory is None else directory
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if (p / ADAPTER_CONFIG_FILE).is_file())


def find_style(name: str, directory: Path | None = None) -> Path | None:
    """The directory of the style `name`, or None when there is no such style."""
    if not name or "/" in name or os.sep in name or name in (".", ".."):
        return None
    path = (styles_dir() if directory is None else directory) / name
    return path if (path / ADAPTER_CONFIG_FILE).is_file() else None


# -- writing (benches and tests: real styles are written by peft in training) -------------------


def lora_shapes(config: ModelConfig, targets: Sequence[str] = TARGETS) -> dict[str, tuple[int, int]]:
    """(out, in) of every `targets` linear of a Llama with `config`, by module name."""
    c, d, inter = config.n_embd, config.head_dim, config.intermediate_size
    per_layer = {"self_attn.q_proj": (config.n_head * d, c), "self_attn.k_proj": (config.n_kv_head * d, c),
                 "self_attn.v_proj": (config.n_kv_head * d, c), "self_attn.o_proj": (c, config.n_head * d),
                 "mlp.gate_proj": (inter, c), "mlp.up_proj": (inter, c), "mlp.down_proj": (c, inter)}
    return {f"model.layers.{i}.{name}": shape for i in range(config.n_layer) for name, shape in per_layer.items()
            if name.rsplit(".", 1)[-1] in targets}


def write_adapter(path: str | os.PathLike, pairs: Mapping[str, tuple[Any, Any]], *, rank: int, alpha: float,
                  use_rslora: bool = False, whole: Mapping[str, Any] | None = None) -> Path:
    """An adapter directory as peft writes it: `pairs` (module -> (A (r, in), B (out, r)) tensors)
    and `whole` (module -> its weight, peft's modules_to_save)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    whole = dict(whole or {})
    targets = sorted({module.rsplit(".", 1)[-1] for module in pairs})
    saved = sorted({module.rsplit(".", 1)[-1] for module in whole} - ({"lm_head"} if any(
        module.endswith("embed_tokens") for module in whole) else set()))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": alpha, "use_rslora": use_rslora,
              "target_modules": targets, "modules_to_save": saved or None, "fan_in_fan_out": False, "bias": "none",
              "lora_dropout": 0.0, "inference_mode": True, "base_model_name_or_path": None}
    tensors = {}
    for module, (a, b) in pairs.items():
        tensors[f"{_PREFIX}{module}{_A}"] = a.contiguous()
        tensors[f"{_PREFIX}{module}{_B}"] = b.contiguous()
    for module, weight in whole.items():
        tensors[f"{_PREFIX}{module}{_W}"] = weight.contiguous()
    save_file(tensors, str(path / ADAPTER_WEIGHTS_FILE))
    (path / ADAPTER_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def write_random_adapter(path: str | os.PathLike, config: ModelConfig, *, rank: int = 8, alpha: float | None = None,
                         targets: Sequence[str] = TARGETS, std: float = 0.02, seed: int = 0) -> Path:
    """A random rank-`rank` adapter for a model with `config` (benches and tests)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    pairs = {module: (torch.randn(rank, n_in, generator=gen) * std, torch.randn(n_out, rank, generator=gen) * std)
             for module, (n_out, n_in) in lora_shapes(config, targets).items()}
    return write_adapter(path, pairs, rank=rank, alpha=float(2 * rank if alpha is None else alpha))
