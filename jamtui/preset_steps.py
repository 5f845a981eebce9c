"""The presets a performer steps through mid-jam with the preset hotkeys: their own, then the
shipped ones, by name."""
from __future__ import annotations

from pathlib import Path

from engine.presets.files import PresetInfo, list_presets, load_preset
from engine.presets.schema import Preset, PresetError


class PresetSteps:
    """Which preset is chosen, and the ones before and after it. `user_dir` None: the user's config dir."""

    def __init__(self, current: Preset, *, user_dir: Path | None = None) -> None:
        self.current = current
        self.user_dir = user_dir
        self.infos: list[PresetInfo] = []

    def refresh(self) -> None:
        """Read the preset directories again (a file saved since shows up)."""
        self.infos = list_presets(user_dir=self.user_dir)

    def step(self, delta: int) -> tuple[Preset | None, list[str]]:
        """The preset `delta` (+1 or -1) places away, read from its file now, skipping files
        that do not load; also the problems of those skipped. None when no other preset loads."""
        if not self.infos:
            return None, []
        here = self._index()
        problems = []
        for n in range(1, len(self.infos) + 1):
            if here is None:  # a preset from elsewhere: step into the list from its ends
                index = (n - 1) % len(self.infos) if delta > 0 else -n % len(self.infos)
            else:
                index = (here + delta * n) % len(self.infos)
                if index == here:
                    break
            try:
                preset = load_preset(self.infos[index].path, user_dir=self.user_dir)
            except PresetError as exc:
                problems.append(str(exc))
                continue
            self.current = preset
            return preset, problems
        return None, problems

    def _index(self) -> int | None:
        source = self.current.source
        for i, info in enumerate(self.infos):
            if source is not None and info.path.resolve() == source:
                return i
        return None
