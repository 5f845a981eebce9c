"""The command line's `jamtui corpus` (add, list, show, remove): a performer's own playing,
collected for style training; `jamtui.cli` registers the parser and calls `cmd_corpus`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from jamtui.errors import UserError
from jamtui.progress import progress_bar


def add_parsers(sub) -> None:
    """Add the `corpus` subcommand to the `jamtui` subparsers `sub`."""
    corpus = sub.add_parser("corpus", help="collect your own playing for style training (add, list, show, remove)")
    actions = corpus.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add MIDI or piano audio files, folders and jamtui recordings (their performer's part)")
    add.add_argument("name", help="the corpus (made if new): letters, digits, '-', '_', '.'")
    add.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                     help="a .mid file, a piano recording (wav, flac, ogg, mp3; transcribed on the way in, with the audio extra) or a folder of them")
    actions.add_parser("list", help="each corpus with its files, hours and notes")
    show = actions.add_parser("show", help="a corpus's figures and files")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    remove = actions.add_parser("remove", help="delete a corpus, or one file of it")
    remove.add_argument("name")
    remove.add_argument("file", nargs="?", help="a source path, stored file name or hash prefix (default: all)")


def cmd_corpus(args) -> int:
    from engine.style.corpus import CorpusError

    action = {"add": _add, "list": _list, "show": _show, "remove": _remove}[args.corpus_command]
    try:
        return action(args)
    except CorpusError as exc:
        raise UserError(str(exc)) from exc


def _add(args) -> int:
    from engine.style.corpus import add_files, check_name

    check_name(args.name)  # before any file is read
    with progress_bar(f"corpus {args.name}", unit="files") as on_progress:
        result = add_files(args.name, args.paths,
                           on_skip=lambda path, reason: _note(f"skipped {path}: {reason}"),
                           on_warning=lambda path, message: _note(f"warning: {path}: {message}"),
                           on_progress=on_progress)
    if not result.added:
        raise UserError(f"corpus {args.name}: no usable MIDI file among those given "
                        f"({len(result.skipped)} skipped, nothing added)")
    added = {"n_files": len(result.added), "n_notes": sum(e["n_notes"] for e in result.added),
             "duration_s": sum(e["duration_s"] for e in result.added)}
    now = result.corpus.summary()
    print(f"corpus {args.name}: added {_files(added['n_files'])} ({_length(added['duration_s'])}, "
          f"{added['n_notes']} notes), skipped {len(result.skipped)}; now {_files(now['n_files'])}, "
          f"{_length(now['duration_s'])}, {now['n_notes']} notes ({_splits(now)})")
    return 0


def _list(args) -> int:
    from engine.style.corpus import CorpusError, list_corpora, open_corpus

    names = list_corpora()
    if not names:
        print("no corpora yet: `jamtui corpus add NAME PATH...` makes one")
        return 0
    rows = [("corpus", "files", "hours", "notes")]
    for name in names:
        try:
            summary = open_corpus(name).summary()
        except CorpusError as exc:
            rows.append((name, "-", "-", f"broken: {exc}"))
            continue
        rows.append((name, str(summary["n_files"]), f"{summary['hours']:.2f}", str(summary["n_notes"])))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}")
    return 0


def _show(args) -> int:
    from engine.style.corpus import check_name, open_corpus

    summary = open_corpus(check_name(args.name)).summary()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    low_high = summary["pitch_range"]
    pitch = f"{_pitch(low_high[0])}-{_pitch(low_high[1])} ({low_high[0]}-{low_high[1]})" if low_high else "-"
    tempo = f"{summary['tempo_bpm']:g} bpm ({summary['tempo_method']})" if summary["tempo_bpm"] else "-"
    density = (f"{summary['density_nps']:g} notes/s ({summary['density_method']})"
               if summary["density_nps"] is not None else "-")
    print(f"corpus {summary['name']}  {summary['path']}")
    for label, value in (("files", f"{summary['n_files']} ({_splits(summary)})"),
                         ("hours", f"{summary['hours']:.3f} ({_length(summary['duration_s'])})"),
                         ("notes", str(summary["n_notes"])), ("pitch", pitch), ("tempo", tempo),
                         ("density", density)):
        print(f"  {label:<8} {value}")
    for split, totals in summary["splits"].items():
        print(f"  {split:<8} {_files(totals['n_files'])}, {totals['n_notes']} notes, {_length(totals['duration_s'])}")
    if summary["files"]:
        print("files:")
    for entry in summary["files"]:
        line = (f"  {entry['split']:<5} {entry['sha256'][:12]}  {_length(entry['duration_s']):>9}  "
                f"{entry['n_notes']:>6} notes  {entry['source']}")
        if entry["kind"] == "recording":
            line += "  (recording: performer's part)"
        print(line + "".join(f"  [warning: {w}]" for w in entry["warnings"]))
    return 0


def _remove(args) -> int:
    from engine.style.corpus import remove_corpus, remove_file

    if args.file is None:
        count = remove_corpus(args.name)
        print(f"removed corpus {args.name} ({_files(count)})")
    else:
        entry = remove_file(args.name, args.file)
        print(f"removed {entry['source']} ({entry['sha256'][:12]}) from corpus {args.name}")
    return 0


def _note(line: str) -> None:
    print(f"jamtui corpus: {line}", file=sys.stderr)


def _files(n: int) -> str:
    return f"{n} file{'s' if n != 1 else ''}"


def _splits(summary: dict) -> str:
    return ", ".join(f"{totals['n_files']} {split}" for split, totals in summary["splits"].items())


def _length(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"


def _pitch(pitch: int) -> str:
    from engine.tokens.keys import PITCH_CLASS_NAMES

    return f"{PITCH_CLASS_NAMES[pitch % 12]}{pitch // 12 - 1}"
