"""The command line's edge: argparse types that check every argument before any work starts (a file
to write, a folder to record into, a finite number in a documented range) and a parser that
reports any bad argument as one line, exit status 2."""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

MAX_MUSIC_MINUTES = 60  # generate/simulate: an hour of music at most, so a typo never runs for days
MAX_MUSIC_S = MAX_MUSIC_MINUTES * 60
MAX_LIVE_S = 24 * 3600  # jam/thru --seconds: a day at most
MAX_SEED = 2**32 - 1


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, `jamtui: error: ...`, with exit status 2 (as a
    UserError is printed), pointing at `--help` instead of printing the usage."""

    def error(self, message: str):  # argparse's hook; never returns
        self.exit(2, f"jamtui: error: {_one_line(message)} (see: {self.prog} --help)\n")


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def number(*, above: float | None = None, at_least: float | None = None, at_most: float | None = None,
           below: float | None = None, whole: bool = False) -> Callable[[str], float | int]:
    """An argparse `type=`: a finite number (an int when `whole`) within the bounds given, else one
    line saying the range and what was given."""
    parts = [f"{word} {_bound(bound)}" for word, bound in
             (("above", above), ("at least", at_least), ("at most", at_most), ("below", below)) if bound is not None]
    wanted = ("a whole number " if whole else "a number ") + " and ".join(parts)

    def convert(text: str) -> float | int:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            value = None
        if (value is None or not math.isfinite(value)
                or (above is not None and not value > above) or (at_least is not None and not value >= at_least)
                or (at_most is not None and not value <= at_most) or (below is not None and not value < below)):
            raise argparse.ArgumentTypeError(f"must be {wanted.strip()}, got {_shown(text)}")
        return value

    convert.__name__ = "whole number" if whole else "number"
    return convert


seed = number(at_least=0, at_most=MAX_SEED, whole=True)
music_seconds = number(above=0, at_most=MAX_MUSIC_S)
music_minutes = number(above=0, at_most=MAX_MUSIC_MINUTES)
live_seconds = number(above=0, at_most=MAX_LIVE_S)
temperature = number(at_least=0, at_most=10)
top_p = number(above=0, at_most=1)
top_k = number(at_least=0, whole=True)


def file_to_write(text: str) -> Path:
    """An argparse `type=`: a path a file can be written to: not a folder or a device, in a folder
    that exists and takes new files (probed with a temporary file, removed at once)."""
    return _checked(_file_to_write, text)


def folder_to_record(text: str) -> Path:
    """An argparse `type=`: a folder to record into, existing or to be made in a folder that does;
    either must take new files."""
    return _checked(_folder_to_record, text)


def _checked(check: Callable[[str], Path], text: str) -> Path:
    try:
        return check(text)
    except (OSError, ValueError) as exc:  # a name too long, a loop of links, a NUL byte
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise argparse.ArgumentTypeError(f"{_shown(text)}: {reason}") from None


def _file_to_write(text: str) -> Path:
    path = Path(text).expanduser()
    if not text:
        raise argparse.ArgumentTypeError("an empty path; give a file name")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{_shown(path)} is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise argparse.ArgumentTypeError(f"{_shown(path)} is not a regular file")
    _check_folder(path, path.parent)
    return path


def _folder_to_record(text: str) -> Path:
    path = Path(text).expanduser()
    if not text:
        raise argparse.ArgumentTypeError("an empty path; give a folder")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{_shown(path)} is a file, not a folder")
    _check_folder(path, path if path.is_dir() else path.parent)
    return path


def _check_folder(path: Path, folder: Path) -> None:
    """`folder` (where `path` goes) exists, is a folder and takes new files; else one line."""
    folder = folder if str(folder) else Path(".")
    if not folder.is_dir():
        for ancestor in (folder, *folder.parents):
            if ancestor.exists():
                if not ancestor.is_dir():
                    raise argparse.ArgumentTypeError(f"{_shown(path)}: {_shown(ancestor)} is a file, not a folder")
                break
        raise argparse.ArgumentTypeError(f"{_shown(path)}: no such folder {_shown(folder)}")
    try:  # access() says yes to root on a read-only mount; a real file says what the system says
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".jamtui-probe-")
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"{_shown(path)}: cannot write in {_shown(folder)} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def _shown(value: object) -> str:
    """A path or argument as printed: control characters escaped, so the error stays one line."""
    text = os.fsdecode(value) if isinstance(value, (str, bytes, os.PathLike)) else str(value)
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text) or "''"


def _one_line(text: str) -> str:
    return " ".join(text.split())
