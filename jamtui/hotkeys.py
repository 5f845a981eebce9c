"""The console's hotkeys as a preset remaps them: its `hotkeys` table checked against the
bindings (unknown actions and keys another action keeps are left out, with a line each)."""
from __future__ import annotations

from textual.binding import Binding
from textual.keys import _normalize_key_list


def resolve_keymap(bindings: list[Binding], overrides: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The keymap (binding id -> keys) a preset's `hotkeys` table asks for, and one line per
    entry left out: an unknown action, or a key another action keeps."""
    defaults = {b.id: _normalize_key_list(b.key) for b in bindings if b.id}
    keymap: dict[str, str] = {}
    problems = []
    for action, keys in overrides.items():
        if action not in defaults:
            problems.append(f"hotkeys.{action}: no such action (actions: {', '.join(sorted(defaults))})")
        else:
            keymap[action] = _normalize_key_list(keys)
    for action in list(keymap):
        final = {**defaults, **keymap}
        mine = set(keymap[action].split(","))
        taken = [other for other, keys in final.items() if other != action and mine & set(keys.split(","))]
        if taken:
            problems.append(f"hotkeys.{action}: {overrides[action]!r} is already the key of {taken[0]}; "
                            f"{action} stays on {defaults[action]!r}")
            del keymap[action]
    return keymap, problems


def live_keys(bindings: list[Binding], keymap: dict[str, str]) -> list[tuple[Binding, str]]:
    """Each binding that has an id, with the keys it answers to under `keymap` (as
    `resolve_keymap` gave it): what the help screen and the command palette show."""
    return [(b, keymap.get(b.id) or _normalize_key_list(b.key)) for b in bindings if b.id]
