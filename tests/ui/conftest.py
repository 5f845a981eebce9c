"""The shipped model, loaded once for the UI tests that jam with it."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def jam_model():
    from engine.model.config import DEFAULT_MODEL_DIR
    from engine.model.load import load_model

    return load_model(DEFAULT_MODEL_DIR)
