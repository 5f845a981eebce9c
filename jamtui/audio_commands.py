"""The command line's `jamtui transcribe` (piano recordings to MIDI files) and `jamtui render` (a MIDI
file or duet to audio); `jamtui.cli` registers the parsers and calls `cmd_transcribe` and `cmd_render`."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from jamtui import arguments as arg
from jamtui.errors import UserError
from jamtui.progress import progress_bar

DEVICES = ("auto", "cpu", "cuda")


def add_parsers(sub) -> None:
    """Add the `transcribe` and `render` subcommands to the `jamtui` subparsers `sub`."""
    transcribe = sub.add_parser("transcribe", help="piano recordings (wav, flac, mp3) to MIDI files (audio extra)")
    transcribe.add_argument("paths", nargs="+", type=Path, metavar="AUDIO",
                            help="a sound file, or a folder searched for .wav .flac .mp3 .ogg .aif(f)")
    transcribe.add_argument("--out", type=arg.folder_to_record, required=True, metavar="DIR",
                            help="where the .mid files go, one per recording (made if missing, in a folder that exists)")
    transcribe.add_argument("--device", choices=DEVICES, default="auto",
                            help="where the model runs: auto (CUDA when there is a GPU, default), cpu, cuda")
    transcribe.add_argument("--overlap", action="store_true",
                            help="decode overlapping windows (the model's own setting): slightly more "
                                 "accurate, twice the compute")
    render = sub.add_parser("render", help="a MIDI file or duet to audio through FluidSynth (audio extra)")
    render.add_argument("file", type=Path, metavar="DUET.mid",
                        help="a MIDI file: a jamtui duet or recording (its performer and ai tracks), or any piano file")
    render.add_argument("--out", type=arg.file_to_write, required=True, metavar="DUET.wav",
                        help="the audio file: .wav or .flac, 16-bit stereo at 44.1 kHz")
    render.add_argument("--soundfont", type=Path, metavar="SF2",
                        help="a .sf2 soundfont (default: the one fluid-soundfont-gm installs)")
    render.add_argument("--mix", action="store_true",
                        help="both players in one stereo mix (default: performer left, AI right)")


def cmd_transcribe(args) -> int:
    from engine.audio.decode import AudioFileError
    from engine.audio.extra import AudioExtraMissing
    from engine.audio.piano_model import OVERLAPPED
    from engine.audio.transcribe import Transcriber, sustain_presses, write_transcription

    sources = _audio_files(args.paths)
    if not sources:
        raise UserError("transcribe: no sound file among those given")
    transcriber = Transcriber(device=_device(args.device), segmenting=OVERLAPPED if args.overlap else None)
    try:
        transcriber.model  # noqa: B018 - load it now: a missing extra is one line before any file
    except AudioExtraMissing as exc:
        raise UserError(str(exc)) from exc
    args.out.mkdir(exist_ok=True)
    written, failed = 0, 0
    taken: set[str] = set()
    for source in sources:
        target = _target(args.out, source, taken)
        try:
            with progress_bar(source.name, unit="s of audio") as on_progress:
                result = transcriber.transcribe(source, on_progress=on_progress)
        except AudioFileError as exc:
            failed += 1
            print(f"jamtui transcribe: skipped {exc}", file=sys.stderr)
            continue
        write_transcription(target, result)
        written += 1
        print(f"{source} -> {target}: {len(result.notes)} notes, {sustain_presses(result)} sustain presses, "
              f"{result.duration_s:.1f} s of audio in {result.compute_s:.1f} s ({result.speed_x:.2f}x real time)")
    if not written:
        raise UserError(f"transcribe: no recording could be transcribed ({failed} skipped)")
    return 0


def cmd_render(args) -> int:
    from engine.audio.extra import AudioExtraMissing
    from engine.audio.render import Layout, RenderError, find_soundfont, render_midi

    if args.out.suffix.lower() not in (".wav", ".flac"):
        raise UserError(f"--out: {args.out}: give a .wav or .flac file")
    try:
        soundfont = find_soundfont(args.soundfont)
        with progress_bar(f"render {args.file.name}", unit="s of music") as on_progress:
            rendered = render_midi(args.file, args.out, soundfont=soundfont,
                                   layout=Layout.MIX if args.mix else Layout.SIDES, on_progress=on_progress)
    except (AudioExtraMissing, RenderError) as exc:
        raise UserError(str(exc)) from exc
    sides = "performer left, AI right" if rendered.layout is Layout.SIDES else "one stereo mix"
    print(f"{args.file} -> {args.out}: {rendered.duration_s:.1f} s, {sides} ({rendered.soundfont.name})")
    return 0


def _audio_files(paths: list[Path]) -> list[Path]:
    """Each sound file given and those under each folder given (sorted), once each; a path that
    is neither gets one line on stderr."""
    from engine.audio.decode import is_audio_path

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and is_audio_path(p))
            if not inside:
                print(f"jamtui transcribe: skipped {path}: folder holds no sound files", file=sys.stderr)
            found += inside
        elif path.exists():
            found.append(path)  # any suffix: the decoder says whether it can read it
        else:
            print(f"jamtui transcribe: skipped {path}: no such file or folder", file=sys.stderr)
    seen: set[str] = set()
    return [p for p in found if not (os.path.realpath(p) in seen or seen.add(os.path.realpath(p)))]


def _target(out: Path, source: Path, taken: set[str]) -> Path:
    """`out/<name>.mid`, or `<name>-2.mid`... when two recordings share a name."""
    name, n = source.stem, 1
    while name.lower() in taken:
        n += 1
        name = f"{source.stem}-{n}"
    taken.add(name.lower())
    return out / f"{name}.mid"


def _device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device cuda: this torch ({torch.__version__}) sees no CUDA GPU; use --device cpu")
    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"
