"""The styles on the command line: `jamtui style list|show`, `--style NAME[:WEIGHT],...` checked
at the edge (one line, exit 2), and `jamtui generate --style` playing a style on the shipped model."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from engine.model.config import DEFAULT_MODEL_DIR, ModelConfig
from jamtui.cli import main, parse_styles
from jamtui.errors import UserError
from tests.conftest import REPO, jamtui_cmd
from tests.midi_fixtures import write_scale

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

TINY = ModelConfig(vocab_size=61, n_layer=2, n_embd=32, n_head=4, n_kv_head=4, intermediate_size=48, max_len=64)
# The parts of the card `jamtui train` writes (engine/style/train.py) that the commands show.
CARD = {"style": "mine", "method": "lora",
        "corpus": {"name": "my-trio", "hours": 1.5, "train_files": ["a.mid", "b.mid", "c.mid"], "val_files": ["d.mid"]},
        "run": {"steps": 1200, "best_step": 1100, "stopped_because": "minutes", "minutes": 20.0, "device": "cpu",
                "history": [{"step": 1, "val_loss": 3.2}]},
        "validation": {"files": 1, "base": {"bits_per_s": 40.0, "nll_per_token": 2.1},
                       "style": {"bits_per_s": 33.0, "nll_per_token": 1.8}},
        "adapter_bytes": 1234, "merged": False, "created": "2026-11-30T12:00:00+00:00"}


@pytest.fixture
def styles(data_home):
    from engine.model.adapters import write_random_adapter
    from engine.user_dirs import styles_dir

    directory = styles_dir()
    mine = write_random_adapter(directory / "mine", TINY, rank=8, targets=["q_proj", "v_proj"])
    (mine / "card.json").write_text(json.dumps(CARD))
    write_random_adapter(directory / "bebop", TINY, rank=4, targets=["up_proj"])
    broken = directory / "zz-broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3"}))
    return directory


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jamtui: error: "), err
    for needle in needles:
        assert needle in lines[0], err


def test_style_list_shows_rank_targets_size_and_corpus(styles, capsys):
    code, out, _ = run_main(capsys, "style", "list")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["bebop", "mine", "zz-broken"]
    assert "rank 8" in lines[1] and "q_proj,v_proj" in lines[1] and "corpus my-trio" in lines[1]
    assert "bits/s 40 -> 33" in lines[1]
    assert "kB" in lines[1]
    assert "rank 4" in lines[0] and "up_proj" in lines[0]
    assert "invalid" in lines[2] and "peft_type" in lines[2]

    code, out, _ = run_main(capsys, "style", "list", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    size = (styles / "mine" / "adapter_model.safetensors").stat().st_size
    assert rows["mine"]["rank"] == 8 and rows["mine"]["size_bytes"] == size and rows["mine"]["corpus"] == "my-trio"
    assert rows["mine"]["bits_per_s"] == 33.0 and rows["bebop"]["bits_per_s"] is None
    assert rows["zz-broken"]["rank"] is None and "IA3" in rows["zz-broken"]["problem"]


def test_style_list_with_no_styles_says_where_they_go(data_home, capsys):
    code, out, _ = run_main(capsys, "style", "list")
    assert code == 0 and "no styles yet" in out and str(data_home) in out


def test_style_show_gives_the_adapter_and_the_card(styles, capsys):
    code, out, _ = run_main(capsys, "style", "show", "mine", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["rank"] == 8 and info["target_modules"] == ["q_proj", "v_proj"] and info["modules"] == 4
    assert info["params"] == 2 * 2 * 8 * (32 + 32) and info["alpha"] == 16.0 and info["scale"] == 2.0
    assert info["card"] == CARD

    code, out, _ = run_main(capsys, "style", "show", "mine")
    assert code == 0
    assert "rank 8" in out and "q_proj, v_proj" in out
    assert "corpus: my-trio, 1.50 h; 3 training, 1 validation files" in out
    assert "run: 1200 steps (best at 1100, stopped: minutes), 20.0 min on cpu" in out
    assert "validation bits/s: base 40 -> style 33 (-17.5%)" in out
    assert "adapter_bytes: 1234" in out and "history" not in out

    # A directory works too (a friend's adapter, not installed), with no card.
    code, out, _ = run_main(capsys, "style", "show", str(styles / "bebop"))
    assert code == 0 and "rank 4" in out and "card: none" in out and "trained whole" not in out

    # A style that also trained modules whole (jamtui train's norms and embedding) says which.
    from engine.model.adapters import write_adapter

    pairs = {"model.layers.0.self_attn.q_proj": (torch.zeros(2, 32), torch.zeros(32, 2))}
    write_adapter(styles / "whole", pairs, rank=2, alpha=4.0, whole={"model.norm": torch.ones(32)})
    code, out, _ = run_main(capsys, "style", "show", "whole", "--json")
    info = json.loads(out)
    assert code == 0 and info["whole_modules"] == ["norm"] and info["params"] == 2 * 2 * 32 + 32
    code, out, _ = run_main(capsys, "style", "show", "whole")
    assert code == 0 and "trained whole: norm" in out


def test_style_show_errors_are_one_line(styles, capsys):
    code, _, err = run_main(capsys, "style", "show", "swing")
    assert_one_line_error(code, err, "no style named 'swing'", "known styles: bebop, mine, zz-broken")
    code, _, err = run_main(capsys, "style", "show", "zz-broken")
    assert_one_line_error(code, err, "adapter", "zz-broken", "peft_type")
    (styles / "mine" / "adapter_model.safetensors").write_bytes(b"\x80\x04 not safetensors")
    code, _, err = run_main(capsys, "style", "show", "mine")
    assert_one_line_error(code, err, "unreadable adapter_model.safetensors")


def test_parse_styles(styles, tmp_path, monkeypatch):
    assert parse_styles("mine:0.5,bebop") == (("mine", 0.5), ("bebop", 1.0))
    assert parse_styles(" mine:2 ") == (("mine", 2.0),)
    assert parse_styles("none") == ()
    friend = tmp_path / "friend"
    friend.mkdir()
    monkeypatch.chdir(tmp_path)
    assert parse_styles("friend:0") == ((str(friend.resolve()), 0.0),)  # a directory here is a path
    assert parse_styles(f"{friend}:1.5,mine") == ((str(friend), 1.5), ("mine", 1.0))
    for bad, needle in [("mine:3", "between 0 and 2"), ("mine:-0.1", "between 0 and 2"), ("mine:loud", "not a number"),
                        ("mine:nan", "between 0 and 2"), (",mine", "empty style name"), ("swing", "known styles"),
                        ("./nowhere", "no such adapter directory")]:
        with pytest.raises(UserError, match=needle):
            parse_styles(bad)


@pytest.mark.parametrize("flag, needles", [
    ("mine:3", ("--style", "mine", "between 0 and 2")),
    ("mine:x", ("--style", "not a number")),
    ("swing:0.5", ("--style", "no style named 'swing'", "known styles: bebop, mine")),
    ("mine,", ("--style", "empty style name")),
])
def test_jam_style_errors_are_one_line_before_anything_opens(styles, capsys, flag, needles):
    code, _, err = run_main(capsys, "jam", "--headless", "--in", "virtual:nobody", "--style", flag)
    assert_one_line_error(code, err, *needles)


def test_generate_plays_a_style_on_the_shipped_model(data_home, tmp_path):
    from engine.model.adapters import write_random_adapter
    from engine.model.checkpoint import read_meta
    from engine.user_dirs import styles_dir

    write_random_adapter(styles_dir() / "mine", read_meta(DEFAULT_MODEL_DIR).config, rank=4, std=0.3, seed=1)
    prompt = write_scale(tmp_path)
    env = dict(os.environ, XDG_DATA_HOME=str(data_home))

    def generate(out: str, *style: str) -> subprocess.CompletedProcess:
        return subprocess.run(jamtui_cmd("generate", "--prompt", str(prompt), "--seconds", "4", "--out",
                                         str(tmp_path / out), *style), cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=120)

    styled = generate("styled.mid", "--style", "mine:1.5")
    assert styled.returncode == 0, styled.stderr
    played = re.search(r"jamtui generate: (\d+) notes", styled.stderr)
    assert played and int(played.group(1)) > 0, styled.stderr
    base = generate("base.mid")
    assert base.returncode == 0, base.stderr
    assert (tmp_path / "styled.mid").read_bytes() != (tmp_path / "base.mid").read_bytes()  # the style played

    unknown = generate("x.mid", "--style", "swing")
    lines = unknown.stderr.strip().splitlines()
    assert unknown.returncode == 2 and len(lines) == 1 and "known styles: mine" in lines[0]
    assert not (tmp_path / "x.mid").exists()


def test_the_bench_row_for_a_merged_adapter(tiny_checkpoint):
    from engine.offline.bench import bench_adapter

    row = bench_adapter(tiny_checkpoint, rank=8, tokens=40, context_tokens=32)
    assert row["adapter_rank"] == 8 and row["adapter_decode_tokens"] == 40
    assert row["decode_ms_p50_no_adapter"] > 0 and row["decode_ms_p50_with_adapter"] > 0
    assert row["adapter_decode_ratio"] == pytest.approx(
        row["decode_ms_p50_with_adapter"] / row["decode_ms_p50_no_adapter"], rel=0.01)


def test_train_flags_default_to_the_style_defaults():
    """`jamtui train` with no tuning flags trains what StyleConfig() says, and the help says so."""
    from jamtui.cli import build_parser
    from engine.style.settings import StyleConfig

    args = build_parser().parse_args(["train", "--corpus", "c", "--name", "n"])
    style = StyleConfig()
    assert (args.rank, args.lr, args.batch, args.replay, args.copies) == (
        style.lora.rank, style.loop.lr, style.loop.batch_size, style.replay_share, style.examples.copies)
    assert args.transpose == style.examples.max_transpose
    assert (1 - args.stretch, 1 + args.stretch) == pytest.approx(style.examples.stretch_range)
    assert (1 - args.velocity_scale, 1 + args.velocity_scale) == pytest.approx(style.examples.velocity_scale_range)
    assert args.velocity_shift == style.examples.velocity_shift


def test_the_first_ctrl_c_stops_the_run_after_its_step_and_a_second_quits_at_once():
    import signal
    import time

    from jamtui.train_command import _ctrl_c_stops

    class Run:
        stopping = False

        def stop(self):
            self.stopping = True

    run, before = Run(), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with _ctrl_c_stops(run, "mine"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # the handler runs on this thread, between two bytecodes
            assert run.stopping
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C is the shell's again after the run
