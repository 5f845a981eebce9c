"""The `jamtui` command: the console app by default, and headless subcommands (ports, play, thru, bench)."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from jamtui import arguments as arg
from jamtui import audio_commands, corpus_commands, eval_command, style_commands, train_command
from jamtui import offline_commands as offline
from jamtui.errors import UserError  # also jamtui.cli.UserError

log = logging.getLogger("jamtui")


def _user_errors() -> tuple[type[BaseException], ...]:
    from engine.midi.base import PortError
    from engine.midi.midifile import MidiFileError

    errors: tuple[type[BaseException], ...] = (UserError, PortError, MidiFileError)
    if "engine.model.checkpoint" in sys.modules:  # only loaded by the commands that use a model
        from engine.model.checkpoint import CheckpointError
        from engine.model.device import DeviceError

        errors += (CheckpointError, DeviceError)
    if "engine.tokens.tokenizer" in sys.modules:
        from engine.tokens.tokenizer import TokenizerConfigError

        errors += (TokenizerConfigError,)
    if "engine.presets.schema" in sys.modules:
        from engine.presets.schema import PresetError

        errors += (PresetError,)
    return errors


LIVE_SECONDS_HELP = (f"stop after this many seconds: above 0, at most {arg.MAX_LIVE_S} "
                     "(default: until Ctrl-C; leave it out for no limit)")
SEED_HELP = f"random seed: 0 to {arg.MAX_SEED} (default 0)"
STYLE_HELP = "styles to play: NAME[:WEIGHT],... (a style name or an adapter directory, weight 0-2, default 1; none: no style)"


def parse_styles(text: str) -> tuple[tuple[str, float], ...]:
    """--style's `NAME[:WEIGHT],...`: (style name or absolute adapter directory, weight 0-2), checked
    to exist; "none" is no style. Raises UserError (one line)."""
    import math

    from engine.model.adapters import MAX_WEIGHT, find_style, style_names
    from engine.user_dirs import styles_dir

    if text.strip().lower() == "none":
        return ()
    styles = []
    for item in text.split(","):
        ref, sep, weight_text = item.strip().rpartition(":")
        if not sep:
            ref, weight_text = weight_text, ""
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            raise UserError(f"--style: {item.strip()!r}: the weight {weight_text!r} is not a number "
                            f"(use NAME[:WEIGHT],...)") from None
        if not ref:
            raise UserError(f"--style: {text!r} has an empty style name (use NAME[:WEIGHT],...)")
        if not math.isfinite(weight) or not 0.0 <= weight <= MAX_WEIGHT:
            raise UserError(f"--style: {ref}: the weight must be between 0 and {MAX_WEIGHT:g}, got {weight_text}")
        path = Path(ref).expanduser()
        if "/" in ref or path.is_dir():
            if not path.is_dir():
                raise UserError(f"--style: {ref}: no such adapter directory")
            ref = str(path.resolve())
        elif find_style(ref) is None:
            known = ", ".join(style_names()) or f"none yet in {styles_dir()}"
            raise UserError(f"--style: no style named {ref!r} (known styles: {known})")
        styles.append((ref, weight))
    return tuple(styles)


def build_parser() -> argparse.ArgumentParser:
    parser = arg.OneLineParser(prog="jamtui", description="Improvise live with an AI that plays like you.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--api", help="MIDI system: auto (default), alsa, jack, coremidi, winmm ($JAMTUI_MIDI_API)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    corpus_commands.add_parsers(sub)
    style_commands.add_parsers(sub)
    train_command.add_parsers(sub)
    eval_command.add_parsers(sub)
    audio_commands.add_parsers(sub)

    sub.add_parser("ports", help="list MIDI inputs and outputs")

    play = sub.add_parser("play", help="play a MIDI file out through a port, in real time")
    play.add_argument("file", type=Path)
    play.add_argument("--out", required=True, help="output port: name, unique suffix, or virtual:NAME")

    thru = sub.add_parser("thru", help="forward an input to an output through the scheduler (headless)")
    thru.add_argument("--in", dest="in_port", default="virtual:jamtui in",
                      help="input port, a .mid file to play as the performer, or virtual:NAME (default)")
    thru.add_argument("--out", dest="out_port", default="virtual:jamtui out",
                      help="output port or virtual:NAME (default: virtual:jamtui out)")
    thru.add_argument("--record", type=arg.folder_to_record, metavar="DIR",
                      help="record the session to DIR (MIDI + JSON; made if missing, in a folder that exists)")
    thru.add_argument("--seconds", type=arg.live_seconds, help=LIVE_SECONDS_HELP)

    gen = sub.add_parser("generate", help="continue a MIDI phrase offline with the model")
    gen.add_argument("--prompt", type=Path, required=True, help="a .mid file: the phrase to answer")
    gen.add_argument("--seconds", type=arg.music_seconds, default=20.0,
                     help=f"how much music to generate: above 0, at most {arg.MAX_MUSIC_S} (default 20)")
    gen.add_argument("--out", type=arg.file_to_write, required=True,
                     help="the duet: prompt (track 1) + model (track 2)")
    gen.add_argument("--model", type=Path, help="checkpoint directory (default: the shipped model)")
    gen.add_argument("--seed", type=arg.seed, default=0, help=SEED_HELP)
    gen.add_argument("--temperature", type=arg.temperature, default=0.95,
                     help="sampling temperature, 0 (always the likeliest token) to 10 (default 0.95)")
    gen.add_argument("--top-p", type=arg.top_p, default=0.95,
                     help="nucleus sampling: above 0, at most 1 (1 = off; default 0.95)")
    gen.add_argument("--top-k", type=arg.top_k, default=0,
                     help="sample among the K likeliest tokens: a whole number, 0 = off (default 0)")
    gen.add_argument("--genre", help="condition: jazz-comping, classical-piano, folk, performance, unknown")
    gen.add_argument("--both", action="store_true", help="let the model play both parts, not only the answer")
    gen.add_argument("--style", help=STYLE_HELP)

    jam = sub.add_parser("jam", help="jam with the model: the console, started on these ports (or --headless)")
    jam.add_argument("--headless", action="store_true", help="no console: log metrics, Ctrl-C ends in silence")
    jam.add_argument("--in", dest="in_port", default="virtual:jamtui in", help="your keyboard's port, or a .mid file")
    jam.add_argument("--out", dest="out_port", default="virtual:jamtui out", help="the synth or DAW port")
    jam.add_argument("--preset", default="default", help="a preset name or a TOML file (default: default)")
    jam.add_argument("--record", type=arg.folder_to_record, metavar="DIR",
                     help="record both players to DIR (made if missing, in a folder that exists)")
    jam.add_argument("--seconds", type=arg.live_seconds, help=LIVE_SECONDS_HELP + "; then quit")
    jam.add_argument("--style", help=STYLE_HELP + "; replaces the preset's adapters")

    sim = sub.add_parser("simulate", help="a whole duet on a fake clock, faster than real time")
    sim.add_argument("--performer", type=Path, required=True, help="a .mid file that plays the performer")
    sim.add_argument("--preset", default="default", help="a preset name or a TOML file (default: default)")
    sim.add_argument("--out", type=arg.file_to_write, required=True, help="the duet as a two-track MIDI file")
    sim.add_argument("--report", type=arg.file_to_write, required=True, help="the report (JSON)")
    sim.add_argument("--minutes", type=arg.music_minutes,
                     help=f"loop the performer to this length: above 0, at most {arg.MAX_MUSIC_MINUTES} "
                          "(default: the file once)")
    sim.add_argument("--seed", type=arg.seed, default=0, help=SEED_HELP)
    sim.add_argument("--json", action="store_true",
                     help="print the report as one JSON line, not a summary (and no progress bar)")
    sim.add_argument("--style", help=STYLE_HELP + "; replaces the preset's adapters")

    bench = sub.add_parser("bench", help="measure timing on this machine")
    bench.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    bench.add_argument("--events", type=arg.number(at_least=1, at_most=1_000_000, whole=True), default=6000,
                       help="scheduled events: 1 to 1000000 (default 6000)")
    bench.add_argument("--no-load", action="store_true", help="without the torch CPU load thread")
    bench.add_argument("--load-threads", type=arg.number(at_least=1, at_most=256, whole=True), default=1,
                       help="torch threads of the load: 1 to 256 (default 1, as in the live engine)")
    bench.add_argument("--out", help="send through this output port (default: an in-memory port)")
    bench.add_argument("--model", type=Path, help="checkpoint for the model rows (default: the shipped model)")
    bench.add_argument("--no-model", action="store_true", help="only the scheduler rows")
    bench.add_argument("--cues", type=arg.number(at_least=0, at_most=10_000, whole=True), default=20,
                       help="phrase ends for the live duet rows (first_note_ms): 0 to 10000, 0 skips them "
                            "(default 20)")
    bench.add_argument("--preset", default="default", help="preset of the live duet rows (name or .toml path)")

    review = sub.add_parser("review", help="the musical figures of recorded or simulated duets")
    review.add_argument("files", type=Path, nargs="+", metavar="DUET.mid", help="two-track duets (performer, ai)")
    review.add_argument("--mode", choices=("call-and-response", "accompany", "continuous"),
                        help="the mode the AI played in (default: from the recording's .json sidecar)")
    review.add_argument("--json", action="store_true", help="print JSON instead of a table")

    preset = sub.add_parser("preset", help="list, show and check presets")
    preset_sub = preset.add_subparsers(dest="preset_command", metavar="ACTION", required=True)
    preset_sub.add_parser("list", help="the presets a name finds: yours, then the shipped ones")
    show = preset_sub.add_parser("show", help="print a preset as TOML, every key resolved")
    show.add_argument("preset", help="a preset name or a .toml file")
    validate = preset_sub.add_parser("validate", help="check a preset file: 'ok: FILE' or the problem")
    validate.add_argument("file", help="a .toml file (or a preset name)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    for word in argv[: argv.index("--") if "--" in argv else len(argv)]:
        # argparse reads `--top-k=--` as the option given no value at all, past its type check.
        option, equals, value = word.partition("=")
        if word.startswith("--") and equals and value == "--":
            parser.error(f"argument {option}: expected one argument")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handlers = {"ports": cmd_ports, "play": cmd_play, "thru": cmd_thru, "jam": cmd_jam, None: cmd_app,
                "bench": offline.cmd_bench, "generate": offline.cmd_generate, "simulate": offline.cmd_simulate,
                "review": offline.cmd_review, "preset": offline.cmd_preset,
                "corpus": corpus_commands.cmd_corpus, "style": style_commands.cmd_style, "train": train_command.cmd_train,
                "eval": eval_command.cmd_eval, "transcribe": audio_commands.cmd_transcribe,
                "render": audio_commands.cmd_render}
    try:
        if getattr(args, "style", None) is not None:
            args.style = parse_styles(args.style)
        return handlers[args.command](args)
    except _user_errors() as exc:
        print(f"jamtui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def cmd_ports(args) -> int:
    from engine.midi.system import list_ports

    ports = list_ports(args.api)
    print(f"MIDI system: {ports.api}")
    print("inputs:")
    for name in ports.inputs or ["(none)"]:
        print(f"  {name}")
    print("outputs:")
    for name in ports.outputs or ["(none)"]:
        print(f"  {name}")
    return 0


def _stop_on_signals(stop: threading.Event) -> None:
    """Ctrl-C / SIGTERM set `stop` so the command can end in silence."""
    def handler(_signum, _frame):
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_play(args) -> int:
    from engine.clock import MonotonicClock
    from engine.midi.midifile import load_midi_events, midi_duration_s
    from engine.midi.file_output import play
    from engine.midi.ports import open_output
    from engine.midi.scheduler import OutputScheduler

    events = load_midi_events(args.file)
    port = open_output(args.out, api=args.api)
    clock = MonotonicClock()
    scheduler = OutputScheduler(port, clock)
    stop = threading.Event()
    _stop_on_signals(stop)
    scheduler.start()
    print(f"jamtui play: {args.file} ({midi_duration_s(events):.1f} s) -> {port.name}; Ctrl-C to stop",
          file=sys.stderr, flush=True)
    try:
        finished = play(scheduler, events, clock, stop=stop)
    finally:
        scheduler.stop()
        port.close()
    stats = scheduler.stats()
    log.info("sent %d messages, lateness p99 %.3f ms", stats.sent, stats.lateness_ms_p99)
    print(f"jamtui play: {'done' if finished else 'stopped'}", file=sys.stderr)
    return 0 if finished else 130


def cmd_thru(args) -> int:
    from engine.clock import MonotonicClock
    from engine.midi.thru import Thru

    clock = MonotonicClock()
    source, sink = _open_ports(args, clock)
    recorder = _start_recorder(args.record, clock, {"in": source.name, "out": sink.name}) if args.record else None
    thru = Thru(source, sink, clock=clock, recorder=recorder)
    stop = threading.Event()
    _stop_on_signals(stop)
    thru.start()
    print(f"jamtui thru: {source.name} -> {sink.name} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        stop.wait(args.seconds) if args.seconds else _wait_forever(stop, thru)
    finally:
        thru.stop()
        sink.close()
        if recorder is not None:
            stats = thru.stats()
            paths = recorder.close(timings={
                "send_lateness_ms_p99": stats.scheduler.lateness_ms_p99,
                "send_lateness_ms_max": stats.scheduler.lateness_ms_max,
                "dropped_input": stats.capture.dropped,
            })
            print(f"jamtui thru: recorded {paths.midi_path}", file=sys.stderr)
    if thru.error is not None:
        print(f"jamtui: error: {thru.error}", file=sys.stderr)
        return 1
    return 0


def _open_ports(args, clock):
    """(input, output) from --in/--out; the input is closed again if the output fails."""
    from engine.midi.ports import open_ports

    return open_ports(args.in_port, args.out_port, api=args.api, clock=clock)


def _wait_forever(stop: threading.Event, thru) -> None:
    while not stop.wait(0.2) and not thru.stopped.is_set():
        pass


def _recover(directory: Path) -> None:
    """Recordings a crash interrupted in `directory` are finished first, and named."""
    from engine.midi.recorder import recover

    for paths in recover(directory):
        print(f"jamtui: recovered an interrupted recording: {paths.midi_path}", file=sys.stderr)


def _start_recorder(directory: Path, clock, meta: dict):
    from engine.midi.recorder import SessionRecorder

    _recover(directory)
    recorder = SessionRecorder(directory, clock, meta=meta)
    recorder.start()
    return recorder


def cmd_jam(args) -> int:
    if not args.headless:
        return cmd_app(args)  # before the engine's imports: the console loads torch in a worker
    from engine.duet.jam import Jam
    from engine.presets.files import load_preset

    stop = threading.Event()

    def on_event(event) -> None:
        log.info("%s at %.2f s %s", event.kind, event.t_s, event.detail or "")
        if event.kind == "failed":
            stop.set()

    preset = offline.with_styles(load_preset(args.preset), args.style)
    jam = Jam(preset, input_spec=args.in_port, output_spec=args.out_port, api=args.api,
              recordings_dir=args.record, on_event=on_event)
    jam.load_model()  # before the signal handlers: a Ctrl-C while loading ends at once (status 130)
    _stop_on_signals(stop)  # from here a Ctrl-C ends in silence with the recording kept
    if args.record:
        _recover(args.record)
    jam.start(record=args.record is not None)
    source_name, sink_name = jam.port_names
    print(f"jamtui jam: {source_name} -> {sink_name}, preset {jam.preset.name} ({jam.mode}); Ctrl-C to stop",
          file=sys.stderr, flush=True)
    deadline = jam.clock.now_ns() + int(args.seconds * 1e9) if args.seconds else None
    try:
        while not stop.wait(5.0 if deadline is None else min(5.0, max(0.0, (deadline - jam.clock.now_ns()) / 1e9))):
            m = jam.metrics()
            print(f"jamtui jam: in {m.notes_in} out {m.notes_out} response p50 {m.response_latency_ms_p50:.1f} ms "
                  f"p99 {m.response_latency_ms_p99:.1f} ms rtf {m.rtf:.1f} dropped {m.dropped_onsets} late {m.late_notes}",
                  file=sys.stderr, flush=True)
            if deadline is not None and jam.clock.now_ns() >= deadline:
                break
    finally:
        summary = jam.stop()
        if summary.recording is not None:
            print(f"jamtui jam: recorded {summary.recording}", file=sys.stderr)
        if summary.recording_error is not None:
            print(f"jamtui jam: error: the recording could not be saved ({summary.recording_error}); "
                  f"its journal in {args.record} is recovered at the next start", file=sys.stderr)
    if summary.error is not None:
        print(f"jamtui jam: error: the session stopped: {summary.error}", file=sys.stderr)
        return 1
    return 0


def cmd_app(args) -> int:
    from jamtui.app import run_console

    return run_console(args)


if __name__ == "__main__":
    sys.exit(main())
