"""Fixtures the engine tests share: the tokenizer, the playful tiny model, one torch thread, and a
user data dir of the test's own."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.tokens.tokenizer import JamTokenizer
from tests.engine.models import Playful

# The fault tests' shared checks assert in a helper module: rewrite it so failures show values.
pytest.register_assert_rewrite("tests.engine.faults")


@pytest.fixture(scope="module")
def tokenizer():
    return JamTokenizer()


@pytest.fixture(scope="module")
def playful(tiny_checkpoint, tokenizer):
    """The tiny real model (tests/conftest.py's tiny_checkpoint), nudged to play notes often."""
    from engine.model.checkpoint import load_checkpoint

    return Playful(load_checkpoint(tiny_checkpoint, warmup=False).model, tokenizer)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and spinning OpenMP threads on a busy 2-core box cost seconds."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XDG_DATA_HOME in the test's tmp_path: corpora and styles land there, never in the user's."""
    home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home
