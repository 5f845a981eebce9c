"""Where jamtui keeps a performer's own things, in the user data dir (platformdirs; on Linux
$XDG_DATA_HOME/jamtui, which tests point at a temporary folder): recordings of jams, the
corpora of their playing, and the styles trained on them."""
from __future__ import annotations

from pathlib import Path


def data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("jamtui"))


def recordings_dir() -> Path:
    return data_dir() / "recordings"


def corpora_dir() -> Path:
    """One folder per corpus: `corpora/NAME/` (manifest.json and the files it lists)."""
    return data_dir() / "corpora"


def styles_dir() -> Path:
    """One folder per trained style: `styles/NAME/` (adapter_config.json, adapter_model.safetensors, its card)."""
    return data_dir() / "styles"
