"""Crash-safe session recording of both players: an fsync'd JSON-lines journal while playing,
a type-1 MIDI file and a JSON sidecar at the end, and `recover` for journals a crash left behind."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import mido

from engine.clock import NS_PER_S, Clock
from engine.events import PLAYER_NAMES, Kind, MidiEvent
from engine.midi.midifile import atomic_write, write_player_tracks

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, the in-process registry still protects us
    fcntl = None

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
JOURNAL_SUFFIX = ".partial.jsonl"
# Kind -> (mido type, field for `number`, field for `value`); pitch bend is converted apart.
_MIDO_FIELDS = {
    Kind.NOTE_ON: ("note_on", "note", "velocity"),
    Kind.NOTE_OFF: ("note_off", "note", "velocity"),
    Kind.POLY_PRESSURE: ("polytouch", "note", "value"),
    Kind.CONTROL: ("control_change", "control", "value"),
    Kind.PROGRAM: ("program_change", None, "program"),
    Kind.CHANNEL_PRESSURE: ("aftertouch", None, "value"),
}
KEPT_KINDS = frozenset(_MIDO_FIELDS) | {Kind.PITCH_BEND}

# Journals being written by live recorders in this process; flock alone would not stop
# `recover` from reading a journal this process holds through a different file object.
_ACTIVE_JOURNALS: set[Path] = set()
_ACTIVE_LOCK = threading.Lock()

TimedMessage = tuple[str, float, mido.Message]  # (player, t_s, message)


@dataclass(frozen=True)
class RecordingPaths:
    midi_path: Path
    sidecar_path: Path


class SessionRecorder:
    """Records performer and AI events to `<directory>/<base>.mid` and `<base>.json`.

    `record` may be called from any thread (MIDI callbacks); `start`, `update_meta`,
    `flush` and `close` from the owning thread. Between `start` and `close` a daemon
    writer appends buffered events to the journal and fsyncs it every `flush_interval_s`.
    """

    def __init__(self, directory: Path, clock: Clock, *, meta: dict | None = None,
                 flush_interval_s: float = 0.25, name: str | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._meta: dict[str, Any] = dict(meta or {})
        json.dumps(self._meta)  # fail here, not in the writer thread
        self._flush_interval_s = flush_interval_s
        self._name = name
        self._lock = threading.Lock()  # guards _buffer and _recording
        self._io_lock = threading.Lock()  # one flush at a time: writer thread or owner
        self._buffer: list[tuple[str, MidiEvent] | dict] = []
        self._recording = False
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._journal: IO[bytes] | None = None
        self._header: dict[str, Any] = {}
        self._paths: RecordingPaths | None = None
        self.base_name: str | None = None
        self.journal_path: Path | None = None
        self.clock_start_ns = 0

    def start(self) -> None:
        if self._journal is not None or self._paths is not None:
            raise RuntimeError("a SessionRecorder records one session; make a new one")
        wall_start = datetime.now()
        self.base_name, self._journal = _create_journal(
            self.directory, self._name or wall_start.strftime("jam-%Y%m%d-%H%M%S"))
        self.journal_path = self.directory / (self.base_name + JOURNAL_SUFFIX)
        with _ACTIVE_LOCK:
            _ACTIVE_JOURNALS.add(self.journal_path.resolve())
        self.clock_start_ns = self._clock.now_ns()
        self._header = {"format": FORMAT_VERSION, "base": self.base_name,
                        "wall_start": wall_start.astimezone().isoformat(timespec="milliseconds"),
                        "clock_start_ns": self.clock_start_ns, "meta": dict(self._meta)}
        self._write_lines([_dumps(self._header)])
        _fsync_dir(self.directory)
        with self._lock:
            self._recording = True
        self._writer = threading.Thread(target=self._write_loop, name="recorder-writer",
                                        daemon=True)
        self._writer.start()
        log.info("recording to %s", self.journal_path)

    def record(self, player: str, event: MidiEvent) -> None:
        """Any thread. Events outside start..close and clock-like kinds are dropped."""
        if player not in PLAYER_NAMES:
            raise ValueError(f"player must be one of {PLAYER_NAMES}, not {player!r}")
        if event.kind not in KEPT_KINDS:
            return
        with self._lock:
            if self._recording:
                self._buffer.append((player, event))

    def update_meta(self, **kw: Any) -> None:
        """Add sidecar info; journaled too, so a recovered session keeps it."""
        json.dumps(kw)
        with self._lock:
            self._meta.update(kw)
            if self._recording:
                self._buffer.append({"meta": kw})

    def flush(self) -> None:
        """Write and fsync what is buffered now, without waiting for the writer."""
        # Taking the batch under the I/O lock keeps journal order equal to record order.
        with self._io_lock:
            with self._lock:
                items, self._buffer = self._buffer, []
            if items:
                self._write_lines([self._line(item) for item in items])

    def close(self, timings: dict | None = None) -> RecordingPaths:
        if self._paths is not None:
            return self._paths
        if self._journal is None:
            raise RuntimeError("close() before start()")
        with self._lock:
            self._recording = False
        self._stop.set()
        if self._writer is not None:
            self._writer.join()
        self.flush()
        end_s = (self._clock.now_ns() - self.clock_start_ns) / NS_PER_S
        header, meta, events, skipped = _read_journal(self.journal_path)
        self._paths = _finish(self.directory, self.base_name, header or self._header,
                              {**meta, **self._meta}, events, end_s,
                              {"status": "complete", "skipped_lines": skipped,
                               "timings": timings or {}})
        self.journal_path.unlink()
        self._journal.close()
        with _ACTIVE_LOCK:
            _ACTIVE_JOURNALS.discard(self.journal_path.resolve())
        log.info("recording saved to %s", self._paths.midi_path)
        return self._paths

    def _write_loop(self) -> None:
        # Flushing is disk housekeeping, not music: it runs on real time even under a FakeClock.
        while not self._stop.wait(self._flush_interval_s):
            try:
                self.flush()
            except Exception:  # a dead writer would silently end crash safety; keep trying
                log.exception("could not write %s; that batch of events is lost", self.journal_path)

    def _line(self, item: tuple[str, MidiEvent] | dict) -> str:
        if isinstance(item, dict):
            return _dumps(item)
        player, event = item
        # Events stamped before start (callback latency) land at 0 rather than before the file.
        t_s = max(0, event.t_ns - self.clock_start_ns) / NS_PER_S
        return _dumps({"p": player, "t_s": t_s, "kind": event.kind.name, "ch": event.channel,
                       "n": event.number, "v": event.value})

    def _write_lines(self, lines: list[str]) -> None:
        self._journal.write("".join(line + "\n" for line in lines).encode())
        self._journal.flush()
        os.fsync(self._journal.fileno())


def recover(directory: Path) -> list[RecordingPaths]:
    """Rebuild `.mid` and sidecar from every journal a crashed session left in `directory`.

    Journals of live recorders (this process: registry; others: flock) are left alone.
    A journal with an unreadable header is renamed to `.corrupt`, never deleted.
    """
    recovered: list[RecordingPaths] = []
    for journal_path in sorted(Path(directory).glob("*" + JOURNAL_SUFFIX)):
        with _ACTIVE_LOCK:
            if journal_path.resolve() in _ACTIVE_JOURNALS:
                continue
        try:
            journal = open(journal_path, "rb")
        except FileNotFoundError:  # its recorder closed since the glob
            continue
        with journal:
            if fcntl is not None:
                try:
                    fcntl.flock(journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    log.info("skipping %s: another process is recording to it", journal_path)
                    continue
            # Its recorder may have closed and unlinked it since the glob: then it is done.
            try:
                if not os.path.samestat(os.fstat(journal.fileno()), os.stat(journal_path)):
                    continue
            except FileNotFoundError:
                continue
            paths = _recover_one(journal_path)
        if paths is not None:
            recovered.append(paths)
    return recovered


def _recover_one(journal_path: Path) -> RecordingPaths | None:
    base = journal_path.name[: -len(JOURNAL_SUFFIX)]
    header, meta, events, skipped = _read_journal(journal_path)
    if header is None:
        corrupt_path = journal_path.with_name(journal_path.name + ".corrupt")
        os.replace(journal_path, corrupt_path)
        log.warning("journal %s has no readable header; kept as %s", journal_path, corrupt_path)
        return None
    end_s = max((t_s for _, t_s, _ in events), default=0.0)
    paths = _finish(journal_path.parent, base, header, {**header.get("meta", {}), **meta},
                    events, end_s, {"status": "recovered", "skipped_lines": skipped, "timings": {}})
    journal_path.unlink()
    log.warning("recovered %s from a crashed session (%d lines skipped)", paths.midi_path, skipped)
    return paths


def _create_journal(directory: Path, base: str) -> tuple[str, IO[bytes]]:
    """Claim the first free base name; exclusive creation means two recorders never share one."""
    for attempt in range(1, 10_000):
        candidate = base if attempt == 1 else f"{base}-{attempt}"
        taken = (candidate + ".mid", candidate + ".json", candidate + JOURNAL_SUFFIX + ".corrupt")
        if any((directory / name).exists() for name in taken):
            continue
        try:
            return candidate, _open_locked(directory / (candidate + JOURNAL_SUFFIX))
        except FileExistsError:
            continue
    raise FileExistsError(f"no free recording name for {base!r} in {directory}")


def _open_locked(path: Path) -> IO[bytes]:
    """Create `path` exclusively, already flock'ed when it appears, so `recover` in another
    process never sees it unlocked and empty; the hard link is what makes creation atomic."""
    if fcntl is None:
        return open(path, "xb")
    tmp_path = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    journal = open(tmp_path, "wb")
    try:
        fcntl.flock(journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.link(tmp_path, path)
        return journal
    except FileExistsError:
        journal.close()
        raise
    except OSError:
        # No hard links on this filesystem: lock right after creating, a tiny unlocked window.
        journal.close()
        journal = open(path, "xb")
        fcntl.flock(journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return journal
    finally:
        tmp_path.unlink(missing_ok=True)


def _read_journal(path: Path) -> tuple[dict | None, dict, list[TimedMessage], int]:
    """(header or None, meta updates, events as (player, t_s, message), lines skipped)."""
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    header = _parse(lines[0]) if lines else None
    if not (isinstance(header, dict) and header.get("format") == FORMAT_VERSION
            and isinstance(header.get("meta", {}), dict)):
        return None, {}, [], len(lines)
    meta: dict[str, Any] = {}
    events: list[TimedMessage] = []
    skipped = 0
    for raw in lines[1:]:
        item = _parse(raw)
        try:
            if "meta" in item:
                meta.update(item["meta"])
                continue
            t_s = float(item["t_s"])
            if item["p"] not in PLAYER_NAMES or not 0 <= t_s < 1e7:
                raise ValueError(item)
            events.append((item["p"], t_s, _to_message(Kind[item["kind"]], item)))
        except (TypeError, KeyError, ValueError, AttributeError):
            # A torn last line after kill -9 lands here too: it is expected, not alarming.
            skipped += 1
    return header, meta, events, skipped


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _to_message(kind: Kind, item: dict) -> mido.Message:
    channel, number, value = int(item["ch"]) & 0x0F, int(item["n"]) & 0x7F, int(item["v"])
    if kind is Kind.PITCH_BEND:
        return mido.Message("pitchwheel", channel=channel, pitch=min(max(value, 0), 16383) - 8192)
    mido_type, number_field, value_field = _MIDO_FIELDS[kind]  # KeyError for kinds not kept
    fields = {value_field: value & 0x7F}
    if number_field:
        fields[number_field] = number
    return mido.Message(mido_type, channel=channel, **fields)


def _finish(directory: Path, base: str, header: dict, meta: dict,
            events: list[TimedMessage], end_s: float,
            extra: dict) -> RecordingPaths:
    end_s = max([end_s] + [t_s for _, t_s, _ in events])
    tracks = [sorted(((t_s, msg) for p, t_s, msg in events if p == player), key=lambda e: e[0])
              for player in PLAYER_NAMES]
    midi_path = directory / (base + ".mid")
    write_player_tracks(midi_path, tracks, end_s)
    counts = Counter(player for player, _, _ in events)
    sidecar = {"format": FORMAT_VERSION, "base": base, "wall_start": header.get("wall_start"),
               "clock_start_ns": header.get("clock_start_ns"), "midi_file": midi_path.name,
               "duration_s": end_s, "counts": {p: counts[p] for p in PLAYER_NAMES}, "meta": meta,
               **extra}
    sidecar_path = directory / (base + ".json")
    atomic_write(sidecar_path, lambda f: f.write(json.dumps(sidecar, indent=2).encode() + b"\n"))
    _fsync_dir(directory)
    return RecordingPaths(midi_path, sidecar_path)


def _fsync_dir(directory: Path) -> None:
    # Makes a new or renamed entry survive power loss; directories cannot be opened on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))
