"""LoRA adapters read from JSON and safetensors only: merged as peft merges them, several blended
by weight, a bad one refused in one line, and styles found by name from a preset."""
from __future__ import annotations

import copy
import pickle

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

from engine.model.adapters import (  # noqa: E402
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
    lora_shapes,
    merge_adapters,
    read_adapter,
    write_adapter,
    write_random_adapter,
)
from engine.model.cache import ModelCache  # noqa: E402
from engine.model.checkpoint import CheckpointError, load_checkpoint, load_hf_checkpoint, save_checkpoint  # noqa: E402
from engine.model.errors import AdapterError  # noqa: E402
from engine.presets.files import load_preset  # noqa: E402
from engine.presets.schema import PresetError, resolve_adapters  # noqa: E402
from tests.engine.adapter_helpers import (  # noqa: E402
    TOKENIZER,
    assert_one_line,
    edit_config,
    merged_state,
    peft_adapter,
    rewrite_tensors,
)
from tests.engine.models import TINY, TINY_GQA_UNTIED, ids_for, random_hf  # noqa: E402

@pytest.fixture
def base(tmp_path):
    hf = random_hf(TINY, seed=3)
    return hf, save_checkpoint(tmp_path / "base", hf, TOKENIZER)


@pytest.mark.parametrize("config", [TINY, TINY_GQA_UNTIED], ids=["mha-tied", "gqa-untied"])
@pytest.mark.parametrize("rslora", [False, True], ids=["alpha-over-r", "rslora"])
def test_merge_equals_peft_merge_and_unload(tmp_path, config, rslora):
    pytest.importorskip("peft")
    hf = random_hf(config, seed=4)
    path = save_checkpoint(tmp_path / "base", hf, TOKENIZER)
    reference = peft_adapter(hf, tmp_path / "style", r=4, alpha=8, rslora=rslora)
    want = merged_state(reference)
    got, _ = load_hf_checkpoint(path, adapters=[(tmp_path / "style", 1.0)])
    got_state = got.state_dict()
    assert set(got_state) == set(want)
    changed = 0
    for key, tensor in want.items():
        torch.testing.assert_close(got_state[key], tensor, atol=1e-6, rtol=1e-5, msg=key)
        changed += not torch.equal(tensor, hf.state_dict()[key])
    assert changed == 7 * config.n_layer  # every linear of every layer moved
    # And the live model decodes what peft's merged model computes.
    ids = ids_for(20)
    live = load_checkpoint(path, adapters=[(tmp_path / "style", 1.0)], warmup=False).model
    with torch.no_grad():
        ref_logits = reference(torch.as_tensor(ids).view(1, -1)).logits[0]
    torch.testing.assert_close(live.forward_full(ids), ref_logits, atol=1e-4, rtol=0)


def test_the_one_adapter_argument_still_merges(base, tmp_path):
    pytest.importorskip("peft")
    hf, path = base
    reference = peft_adapter(hf, tmp_path / "style", targets=["q_proj", "v_proj"])
    got, _ = load_hf_checkpoint(path, adapter=tmp_path / "style")
    torch.testing.assert_close(got.state_dict()["model.layers.1.self_attn.v_proj.weight"],
                               merged_state(reference)["model.layers.1.self_attn.v_proj.weight"])


@pytest.mark.parametrize("w1, w2", [(0.5, 1.5), (2.0, 0.25)])
def test_two_adapters_blend_by_weight(base, tmp_path, w1, w2):
    pytest.importorskip("peft")
    hf, path = base
    one = merged_state(peft_adapter(hf, tmp_path / "one", targets=["q_proj", "up_proj"], seed=1))
    two = merged_state(peft_adapter(hf, tmp_path / "two", r=2, alpha=4, targets=["q_proj", "down_proj"], seed=2))
    start = hf.state_dict()
    got, _ = load_hf_checkpoint(path, adapters=[(tmp_path / "one", w1), (tmp_path / "two", w2)])
    for key, tensor in got.state_dict().items():
        want = start[key] + w1 * (one[key] - start[key]) + w2 * (two[key] - start[key])
        torch.testing.assert_close(tensor, want, atol=1e-5, rtol=1e-5, msg=key)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(got.state_dict()[q], one[q], atol=1e-3)  # both count on the shared module


def test_weight_zero_is_the_base(base, tmp_path):
    hf, path = base
    write_random_adapter(tmp_path / "style", TINY, rank=4, std=0.5)
    got, _ = load_hf_checkpoint(path, adapters=[(tmp_path / "style", 0.0)])
    for key, tensor in hf.state_dict().items():
        assert torch.equal(got.state_dict()[key], tensor), key
    moved, _ = load_hf_checkpoint(path, adapters=[(tmp_path / "style", 0.1)])
    assert not torch.equal(moved.state_dict()["model.layers.0.mlp.up_proj.weight"],
                           hf.state_dict()["model.layers.0.mlp.up_proj.weight"])


@pytest.mark.parametrize("changes, field, words", [
    ({"peft_type": "PREFIX_TUNING"}, "peft_type", "only LORA"),
    ({"r": 0}, "r", "positive whole number"),
    ({"r": "4"}, "r", "positive whole number"),
    ({"lora_alpha": -1}, "lora_alpha", "positive number"),
    ({"use_rslora": "yes"}, "use_rslora", "true or false"),
    ({"fan_in_fan_out": True}, "fan_in_fan_out", "not supported"),
    ({"bias": "all"}, "bias", "only 'none'"),
    ({"target_modules": ".*proj"}, "target_modules", "pattern"),
    ({"target_modules": ["q_proj", "lm_head"]}, "target_modules", "'lm_head'"),
    ({"use_dora": True}, "use_dora", "not supported"),
    ({"modules_to_save": ["wte"]}, "modules_to_save", "'wte' is not one of"),
    ({"modules_to_save": "norm"}, "modules_to_save", "list of module names"),
    ({"layers_to_transform": 0}, "layers_to_transform", "not supported"),
])
def test_a_config_it_cannot_honour_is_one_line_naming_the_file_and_field(base, tmp_path, changes, field, words):
    _, path = base
    style = write_random_adapter(tmp_path / "style", TINY, rank=4)
    edit_config(style, **changes)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, adapters=[(style, 1.0)], warmup=False)
    assert isinstance(err.value, AdapterError)
    assert_one_line(err.value, f"adapter {style}", f"{ADAPTER_CONFIG_FILE}: {field}:", words)


def test_a_missing_or_stray_tensor_is_one_line(base, tmp_path):
    _, path = base
    style = write_random_adapter(tmp_path / "style", TINY, rank=4, targets=["q_proj", "v_proj"])
    gone = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"
    rewrite_tensors(style, lambda t: t.pop(gone))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, adapters=[(style, 1.0)], warmup=False)
    assert_one_line(err.value, str(style), "missing tensor", gone)

    style = write_random_adapter(tmp_path / "stray", TINY, rank=4, targets=["q_proj"])
    rewrite_tensors(style, lambda t: t.update({"base_model.model.lm_head.weight": torch.zeros(61, 32)}))
    with pytest.raises(AdapterError) as err:
        read_adapter(style)
    assert_one_line(err.value, str(style), "base_model.model.lm_head.weight", "modules_to_save does not list")

    style = write_random_adapter(tmp_path / "untargeted", TINY, rank=4, targets=["q_proj", "k_proj"])
    edit_config(style, target_modules=["q_proj"])
    with pytest.raises(AdapterError) as err:
        read_adapter(style)
    assert_one_line(err.value, "k_proj.lora_A.weight", "target_modules does not list")


def test_an_adapter_for_another_shape_is_one_line(base, tmp_path):
    _, path = base
    wider = TINY.__class__(**{**TINY.to_dict(), "n_embd": 48, "n_head": 4, "n_kv_head": 4})
    style = write_random_adapter(tmp_path / "style", wider, rank=4, targets=["up_proj"])
    with pytest.raises(AdapterError) as err:
        load_checkpoint(path, adapters=[(style, 1.0)], warmup=False)
    assert_one_line(err.value, str(style), "up_proj.lora_A.weight has shape (4, 48)", "needs (4, 32)")

    deeper = TINY.__class__(**{**TINY.to_dict(), "n_layer": 3})
    style = write_random_adapter(tmp_path / "deeper", deeper, rank=4, targets=["q_proj"])
    with pytest.raises(AdapterError) as err:
        load_checkpoint(path, adapters=[(style, 1.0)], warmup=False)
    assert_one_line(err.value, "model.layers.2.self_attn.q_proj, which the base model does not have")

    style = write_random_adapter(tmp_path / "rank", TINY, rank=4, targets=["q_proj"])
    edit_config(style, r=8)
    with pytest.raises(AdapterError) as err:
        read_adapter(style)
    assert_one_line(err.value, "not rank r=8")


class Boom:
    """Unpickling this would run code: it touches the marker file."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_file_is_refused_unread(base, tmp_path):
    _, path = base
    style = write_random_adapter(tmp_path / "style", TINY, rank=4)
    (style / ADAPTER_WEIGHTS_FILE).unlink()
    marker = tmp_path / "pwned"
    (style / "adapter_model.bin").write_bytes(pickle.dumps(Boom(marker)))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, adapters=[(style, 1.0)], warmup=False)
    assert_one_line(err.value, str(style), "adapter_model.bin", "pickle", "safetensors")
    assert not marker.exists()

    # A pickle under the safetensors name is unreadable, not run.
    (style / "adapter_model.bin").rename(style / ADAPTER_WEIGHTS_FILE)
    with pytest.raises(AdapterError) as err:
        read_adapter(style)
    assert_one_line(err.value, str(style), f"unreadable {ADAPTER_WEIGHTS_FILE}")
    assert not marker.exists()


def test_missing_files_and_bad_weights_are_one_line(base, tmp_path):
    _, path = base
    with pytest.raises(AdapterError) as err:
        load_checkpoint(path, adapters=[(tmp_path / "nowhere", 1.0)], warmup=False)
    assert_one_line(err.value, str(tmp_path / "nowhere"), "not a directory")
    style = write_random_adapter(tmp_path / "style", TINY, rank=4)
    (style / ADAPTER_CONFIG_FILE).write_text("{not json")
    with pytest.raises(AdapterError) as err:
        read_adapter(style)
    assert_one_line(err.value, f"unreadable {ADAPTER_CONFIG_FILE}")
    style = write_random_adapter(tmp_path / "fine", TINY, rank=4)
    with pytest.raises(AdapterError) as err:
        load_checkpoint(path, adapters=[(style, 2.5)], warmup=False)
    assert_one_line(err.value, str(style), "weight must be between 0 and 2")


def test_merging_checks_every_adapter_before_changing_a_weight(tmp_path):
    hf = random_hf(TINY, seed=5)
    before = copy.deepcopy(hf.state_dict())
    good = write_random_adapter(tmp_path / "good", TINY, rank=4)
    bad = write_random_adapter(tmp_path / "bad", TINY, rank=4)
    edit_config(bad, bias="lora_only")
    with pytest.raises(AdapterError):
        merge_adapters(hf, [(good, 1.0), (bad, 1.0)])
    for key, tensor in hf.state_dict().items():
        assert torch.equal(tensor, before[key]), key


def test_written_adapters_are_read_back_with_their_shapes(tmp_path):
    style = write_random_adapter(tmp_path / "s", TINY_GQA_UNTIED, rank=3, targets=["k_proj", "o_proj"])
    adapter = read_adapter(style)
    assert adapter.config.rank == 3 and adapter.config.target_modules == ("k_proj", "o_proj")
    shapes = lora_shapes(TINY_GQA_UNTIED, ["k_proj", "o_proj"])
    assert {m: (tuple(b.shape[:1]) + tuple(a.shape[1:])) for m, (a, b) in adapter.pairs.items()} == shapes
    assert shapes["model.layers.0.self_attn.k_proj"] == (16, 32)  # 2 kv heads of 8
    assert adapter.n_params == sum(3 * (o + i) for o, i in shapes.values())
    write_adapter(tmp_path / "t", {m: p for m, p in adapter.pairs.items()}, rank=3, alpha=6.0, use_rslora=True)
    again = read_adapter(tmp_path / "t")
    assert again.config.use_rslora and again.config.scale == pytest.approx(6.0 / 3**0.5)


def test_the_model_cache_keys_on_adapters_and_weights(tmp_path):
    calls = []

    def loader(path, adapters=()):
        calls.append((path, adapters))
        return object(), "tok"

    cache = ModelCache(loader)
    first = cache.get(tmp_path, [(tmp_path / "a", 0.5)])
    assert cache.get(tmp_path, [(str(tmp_path / "a"), 0.5)]).model is first.model
    assert cache.get(tmp_path, [(tmp_path / "a", 0.7)]).model is not first.model
    plain = cache.get(tmp_path)
    assert plain.model is not first.model and plain.adapters == ()
    assert calls == [(tmp_path, ((tmp_path / "a", 0.5),)), (tmp_path, ((tmp_path / "a", 0.7),)), (tmp_path, ())]
    assert first.label == f"{tmp_path.name} + a:0.5"


# -- style names in presets -------------------------------------------------------------------


@pytest.fixture
def styles(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from engine.user_dirs import styles_dir

    directory = styles_dir()
    assert directory == tmp_path / "data" / "jamtui" / "styles"
    for name in ("mine", "bebop"):
        write_random_adapter(directory / name, TINY, rank=2, targets=["q_proj"])
    return directory


def test_a_preset_names_a_style(tmp_path, styles):
    presets = tmp_path / "presets"
    presets.mkdir()
    file = presets / "p.toml"
    file.write_text('[[model.adapters]]\npath = "mine"\nweight = 0.6\n[[model.adapters]]\npath = "bebop"\n')
    assert resolve_adapters(load_preset(file)) == [(styles / "mine", 0.6), (styles / "bebop", 1.0)]

    (presets / "mine").mkdir()  # a directory of that name next to the preset is a path, and wins
    assert resolve_adapters(load_preset(file))[0] == (presets.resolve() / "mine", 0.6)

    file.write_text('[[model.adapters]]\npath = "bebop"\n[[model.adapters]]\npath = "swing"\n')
    with pytest.raises(PresetError) as err:
        resolve_adapters(load_preset(file))
    assert_one_line(err.value, str(file.resolve()), "model.adapters[1].path", "'swing'", "known styles: bebop, mine")


def test_a_style_name_with_no_styles_yet_says_where_they_live(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "empty"))
    file = tmp_path / "p.toml"
    file.write_text('[[model.adapters]]\npath = "mine"\n')
    with pytest.raises(PresetError) as err:
        resolve_adapters(load_preset(file))
    assert_one_line(err.value, "model.adapters[0].path", "none yet in", str(tmp_path / "empty"))
