"""The command line's offline commands: generate, simulate, review, bench and preset (no MIDI
ports, no console); `jamtui.cli` parses the arguments and calls them."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from jamtui.errors import UserError
from jamtui.progress import progress_bar


def load_model(path: Path | None, adapters=()):
    """(live model, tokenizer) at `path` (None: the shipped model) with `adapters` ((directory, weight), ...)."""
    from engine.model.load import load_model as load

    return load(path, adapters)


def preset_and_model(name: str, styles=None):
    """(preset, model, tokenizer): the preset by name or file, its adapters replaced by `styles`
    (`--style`, parsed by `jamtui.cli`) when given, and its model with its adapters merged."""
    from engine.presets.files import load_preset
    from engine.presets.schema import resolve_adapters, resolve_model_path

    preset = with_styles(load_preset(name), styles)
    return (preset, *load_model(resolve_model_path(preset), resolve_adapters(preset)))


def with_styles(preset, styles):
    """`preset` playing `styles` ((style name or absolute directory, weight), ...) instead of its
    own adapters; unchanged when `styles` is None (no --style given)."""
    from engine.presets.schema import merge

    if styles is None:
        return preset
    return merge(preset, {"model": {"adapters": [{"path": ref, "weight": weight} for ref, weight in styles]}},
                 origin="--style")




def cmd_bench(args) -> int:
    from engine.offline.bench import run_all
    from engine.midi.ports import open_output

    from engine.presets.files import load_preset
    from engine.presets.schema import resolve_adapters, resolve_model_path

    preset = load_preset(args.preset)
    model_path, model, tokenizer = None, None, None
    if not args.no_model:  # the preset's model and styles, or --model with the preset's styles
        model_path = args.model or resolve_model_path(preset)
        model, tokenizer = load_model(model_path, resolve_adapters(preset))
    port = open_output(args.out, api=args.api) if args.out else None
    try:
        with progress_bar("jamtui bench", unit="stages", quiet=args.json) as on_progress:
            result = run_all(n_events=args.events, load=not args.no_load, load_threads=args.load_threads, port=port,
                             model=model, tokenizer=tokenizer, preset=preset, cues=args.cues,
                             model_path=model_path, on_progress=on_progress)
    finally:
        if port is not None:
            port.close()
    if args.json:
        print(json.dumps(result))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="jamtui bench")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    Console().print(table)
    return 0


def cmd_generate(args) -> int:
    from engine.tokens.conditions import Conditions
    from engine.offline.continuation import continue_notes
    from engine.events import AI, PERFORMER
    from engine.model.sampling import Sampling
    from engine.midi.midifile import load_pitched_events, write_duet
    from engine.midi.notes import notes_from_events

    prompt = notes_from_events(load_pitched_events(args.prompt))
    model, tokenizer = load_model(args.model, _style_dirs(args.style))
    try:
        conditions = Conditions(genre=args.genre) if args.genre else None
    except ValueError as exc:
        raise UserError(f"--genre: {exc}") from exc
    sampling = Sampling(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, repetition_penalty=1.05)
    players = (PERFORMER, AI) if args.both else (AI,)
    with progress_bar("jamtui generate") as on_progress:
        notes, stats = continue_notes(model, tokenizer, prompt, args.seconds, sampling=sampling, seed=args.seed,
                                      conditions=conditions, players=players, on_progress=on_progress)
    write_duet(args.out, prompt + notes)
    print(f"jamtui generate: {len(notes)} notes in {args.seconds:g} s of music "
          f"({stats.tokens} tokens, {stats.compute_s:.2f} s compute, real-time factor {stats.rtf:.1f}) -> {args.out}",
          file=sys.stderr)
    return 0


def _style_dirs(styles) -> list[tuple[Path, float]]:
    """--style's (style name or absolute directory, weight) as (adapter directory, weight)."""
    from engine.model.adapters import find_style

    return [(find_style(ref) or Path(ref), weight) for ref, weight in styles or ()]


def cmd_preset(args) -> int:
    from engine.presets.files import list_presets, load_preset
    from engine.presets.schema import dump_preset

    if args.preset_command == "list":
        infos = list_presets()
        width = max((len(info.name) for info in infos), default=0)
        for info in infos:
            summary = info.description.splitlines()[0] if info.description else ""
            print(f"{info.name:<{width}}  {info.source:<7}  {summary}")
    elif args.preset_command == "show":
        print(dump_preset(load_preset(args.preset)), end="")
    else:
        load_preset(args.file)
        print(f"ok: {args.file}")
    return 0


def cmd_simulate(args) -> int:
    from engine.midi.midifile import atomic_write, load_pitched_events
    from engine.offline.simulate import simulate

    if args.out.resolve() == args.report.resolve():
        raise UserError(f"--out and --report name the same file ({args.out}): give the report its own name")
    load_pitched_events(args.performer, warn=False)  # a bad file is refused before the model loads
    preset, model, tokenizer = preset_and_model(args.preset, args.style)
    with progress_bar("jamtui simulate", quiet=args.json) as on_progress:
        report = simulate(args.performer, model, tokenizer, preset, args.out, minutes=args.minutes, seed=args.seed,
                          on_progress=on_progress)
    text = json.dumps(report, indent=1) + "\n"
    atomic_write(args.report, lambda f: f.write(text.encode()))
    if args.json:
        print(json.dumps(report))
    else:
        print(_simulate_summary(report, args.out, args.report))
    return 0


def _simulate_summary(report: dict, out: Path, report_path: Path) -> str:
    """simulate's report in one human line (the whole report is in the file, or --json)."""
    def ms(key: str) -> str:
        value = report.get(key)
        return "-" if value is None or math.isnan(value) else f"{value:.0f}"  # none measured: None or nan

    return (f"jamtui simulate: {report['music_s'] / 60:.1f} min of music in {report['wall_s']:.1f} s "
            f"(real-time factor {report['rtf']:.1f}); performer {report['performer_notes']} notes, "
            f"ai {report['ai_notes']} notes; response p50 {ms('response_ms_p50')} ms, p99 {ms('response_ms_p99')} ms; "
            f"stuck {report['stuck_notes']}, late {report['late_notes']} -> {out}, report {report_path}")


def cmd_review(args) -> int:
    from engine.offline.review import review_file

    rows = []
    for path in args.files:
        try:
            rows.append(review_file(path, mode=args.mode))
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows, allow_nan=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="jamtui review")
    table.add_column("figure")
    for row in rows:
        table.add_column(f"{Path(str(row['file'])).name} ({row['mode']})", justify="right")
    for key in [k for k in rows[0] if k not in ("file", "mode")]:
        table.add_row(key, *(_shown(row.get(key)) for row in rows))
    Console().print(table)
    return 0


def _shown(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
