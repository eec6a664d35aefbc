"""Where the app's CPU goes: ``python -m bench --profile`` (``make bench-profile``).

While each wrk scenario runs, ``py-spy record`` samples gunicorn's master and, through
``--subprocesses``, every worker it has forked, 200 times a second, without pausing them
(``--nonblocking``: the measurement itself should move as little as possible). py-spy runs
without ``--idle``: it keeps only the threads the kernel shows running or ready to run
(state R), so a thread blocked in a socket read, a lock, a select or on the GIL is not
sampled at all, and every sample is CPU used (or, on a busy machine, waited for). The
output is the "collapsed stacks" text (``frame;frame;frame count``, outermost first, the
process frames of ``--subprocesses`` in front), kept under
``instance/bench/profiles/<run>/`` for flame graphs, and summarized here:

* by *area*: each sample goes to the innermost (leaf-most) frame that belongs to a known
  library or to one of our own subpackages, so a stack that runs through Flask into our
  service and then into SQLAlchemy counts as SQLAlchemy, while one whose innermost known
  frame is our service counts as ``lootbox.services`` (the standard-library helpers it
  calls included);
* by function: the innermost frame alone (*self*), and every function on the stack once
  (*inclusive*).

The parsing and attribution are pure functions of the text, tested without servers.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.counters import process_cpu_s

REPO_ROOT = Path(__file__).resolve().parents[1]
RATE = 200  # samples per second per thread
ATTACH_TIMEOUT = 15.0
TOP = 20  # functions kept per list in the summary (the report shows fewer)

IDLE = "idle/waiting"
OTHER = "other"
NO_FRAME = "no Python frame"  # a thread between Python frames, or a torn --nonblocking read
MISSING = "py-spy: pip install py-spy"

# The first component of a module path (``sqlalchemy/engine/base.py``) → its area.
PACKAGE_AREAS: dict[str, str] = {
    "sqlalchemy": "sqlalchemy",
    "psycopg": "psycopg",
    "psycopg_binary": "psycopg",
    "psycopg_pool": "psycopg",
    "flask": "flask/werkzeug",
    "werkzeug": "flask/werkzeug",
    "itsdangerous": "flask/werkzeug",
    "blinker": "flask/werkzeug",
    "marshmallow": "marshmallow/webargs/smorest",
    "webargs": "marshmallow/webargs/smorest",
    "flask_smorest": "marshmallow/webargs/smorest",
    "apispec": "marshmallow/webargs/smorest",
    "redis": "redis",
    "prometheus_client": "prometheus_client",
    "logging": "logging",
    "json": "json",
    # The wallet client: requests on urllib3 on the standard library's http.client.
    "requests": "requests/urllib3",
    "urllib3": "requests/urllib3",
    "charset_normalizer": "requests/urllib3",
    "idna": "requests/urllib3",
    "certifi": "requests/urllib3",
    "http/client.py": "requests/urllib3",
    "hmac.py": "hmac/hashlib",
    "hashlib.py": "hmac/hashlib",
    "gunicorn": "gunicorn",
    "bench": "bench (baseline app)",
    # Our entry points at the top of the repository.
    "app.py": "lootbox",
    "wsgi.py": "lootbox",
}

# Calls that block when there is nothing to do: (module path, function) → idle/waiting, when
# innermost on the stack (further out, as gthread's _worker under every request, they are
# just callers). Without --idle, py-spy samples such a frame only while the thread is
# running in it (the system call's own work, a wake-up, a poll that found data) or ready
# to, not while it is blocked.
WAITING: dict[str, frozenset[str]] = {
    "socket.py": frozenset({"recv", "recv_into", "recvfrom", "readinto", "accept"}),
    "ssl.py": frozenset({"read", "recv", "recv_into"}),
    "selectors.py": frozenset({"select"}),
    "select.py": frozenset({"select", "poll"}),
    "threading.py": frozenset({"wait", "acquire", "join", "_wait_for_tstate_lock"}),
    "queue.py": frozenset({"get"}),
    # gunicorn's gthread pool: a thread between requests, in SimpleQueue.get (C code).
    "concurrent/futures/thread.py": frozenset({"_worker"}),
    "psycopg/waiting.py": frozenset({"wait", "wait_select", "wait_epoll", "wait_poll"}),
    "gunicorn/arbiter.py": frozenset({"sleep"}),  # the master's select() between checks
}

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# What --subprocesses (``process 123:"argv"``) and --threads (``thread (0x7f..): name``)
# put in front of the Python frames.
_PREFIX = re.compile(
    r'process (?P<pid>\d+):"[^"]*"(?:;|$)|thread \((?:0x[0-9a-fA-F]+|\d+)\)(?:: [^;]*)?(?:;|$)'
)
_STDLIB = re.compile(r"/lib/python3(?:\.\d+)?/(?P<rest>.*)$")


@dataclass(frozen=True)
class Frame:
    function: str  # as py-spy names it: the qualified name (``Session.execute``)
    file: str  # as py-spy shows it: a full path with --full-filenames, else a short one
    line: int | None = None

    @property
    def module_path(self) -> str:
        return module_path(self.file)

    @property
    def label(self) -> str:
        """Function and file without the line, the file as its top package and basename:
        ``Connection.wait (psycopg/connection.py)``, ``execute (sqlalchemy/…/base.py)``,
        ``Condition.wait (threading.py)``; ours in full (``lootbox/api/s2s.py``). The
        basename alone would mix up ``socket.py`` of the standard library with redis's,
        or psycopg's ``connection.py`` with redis's. Closures lose their ``<locals>``."""
        path = self.module_path
        parts = path.split("/")
        if len(parts) > 2 and parts[0] != "lootbox":
            path = f"{parts[0]}/…/{parts[-1]}"
        function = self.function.replace(".<locals>.", ".")
        return f"{function} ({path})" if path else function


@dataclass(frozen=True)
class Stack:
    """One line of collapsed stacks: outermost frame first, as py-spy writes them."""

    frames: tuple[Frame, ...]
    count: int
    pids: tuple[int, ...] = ()  # the processes of --subprocesses, outermost first

    @property
    def worker(self) -> int | None:
        """The PID of the child of the process py-spy was given (a gunicorn worker); None
        for a sample of that process itself (the master)."""
        return self.pids[-1] if len(self.pids) > 1 else None


def module_path(file: str) -> str:
    """The part of a file name that names the module (``flask/sansio/app.py``). We ask
    py-spy for full file names: its own short names stop at the first directory without
    an ``__init__.py``, so flask's ``sansio/app.py`` would read as our ``app.py``."""
    path = file.replace("\\", "/")
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in path:
            return path.rsplit(marker, 1)[1]
    stdlib = _STDLIB.search(path)
    if stdlib:
        return stdlib.group("rest")
    root = f"{REPO_ROOT.as_posix()}/"
    return path.removeprefix(root)


def parse_frame(text: str) -> Frame:
    match = _FRAME.match(text)
    if match is None:
        return Frame(text, "")
    line = match.group("line")
    return Frame(match.group("function"), match.group("file"), int(line) if line else None)


def parse_line(line: str) -> Stack | None:
    """One collapsed-stack line, or None for a blank or malformed one."""
    text, _, count = line.rstrip("\n").rpartition(" ")
    if not text or not count.isdigit():
        return None
    pids: list[int] = []
    while prefix := _PREFIX.match(text):
        if prefix.group("pid"):
            pids.append(int(prefix.group("pid")))
        text = text[prefix.end() :]
    frames = tuple(parse_frame(part) for part in text.split(";") if part)
    return Stack(frames, int(count), tuple(pids))


def parse_collapsed(lines: Iterable[str]) -> list[Stack]:
    return [stack for line in lines if (stack := parse_line(line)) is not None]


def is_waiting(frame: Frame) -> bool:
    """A call that blocks (``WAITING``), by module path and unqualified function name."""
    waiting = WAITING.get(frame.module_path)
    return waiting is not None and frame.function.rsplit(".", 1)[-1] in waiting


def area_of(frame: Frame) -> str | None:
    """The library or subpackage of ours a frame belongs to, or None (the standard
    library, other packages)."""
    path = frame.module_path
    if not path:
        return None
    top, _, rest = path.partition("/")
    if top == "lootbox":
        # By subpackage (lootbox/api/s2s.py → lootbox.api), a module of its own at the top
        # (lootbox/signing.py → lootbox.signing).
        return "lootbox." + (rest.split("/", 1)[0].removesuffix(".py") if rest else "")
    if path in PACKAGE_AREAS:
        return PACKAGE_AREAS[path]
    return PACKAGE_AREAS.get(top)


def attribute(frames: Sequence[Frame]) -> str:
    """``idle/waiting`` if the innermost frame is a blocking call; else the area of the
    innermost frame that has one; ``other`` if none does."""
    if not frames:
        return NO_FRAME
    if is_waiting(frames[-1]):
        return IDLE
    for frame in reversed(frames):
        area = area_of(frame)
        if area is not None:
            return area
    return OTHER


def _is_ours(frame: Frame) -> bool:
    return frame.module_path.startswith("lootbox/")


@dataclass
class ProfileSummary:
    """Samples by area and the busiest functions, as counts (shares are taken when
    rendered, so that summaries of several rounds can be added up from their files)."""

    samples: int = 0
    areas: dict[str, int] = field(default_factory=dict)
    areas_inclusive: dict[str, int] = field(default_factory=dict)  # anywhere on the stack
    top_self: list[tuple[str, int]] = field(default_factory=list)
    top_inclusive: list[tuple[str, int]] = field(default_factory=list)
    top_ours: list[tuple[str, int]] = field(default_factory=list)  # lootbox/, inclusive
    # Workers with samples: with keep-alive, one gunicorn worker may accept every one of
    # wrk's connections and leave the others idle.
    workers: int = 0
    files: list[str] = field(default_factory=list)
    rate: int = RATE
    py_spy_cpu_s: float = 0.0  # what the sampling itself cost (counted as ours)
    py_spy_errors: int = 0  # samples py-spy could not read (--nonblocking races)
    py_spy_behind_s: float = 0.0  # how far py-spy fell behind its rate at worst

    def share(self, area: str) -> float:
        return self.areas.get(area, 0) / self.samples if self.samples else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "areas": dict(self.areas),
            "areas_inclusive": dict(self.areas_inclusive),
            "top_self": [list(pair) for pair in self.top_self],
            "top_inclusive": [list(pair) for pair in self.top_inclusive],
            "top_ours": [list(pair) for pair in self.top_ours],
            "workers": self.workers,
            "files": list(self.files),
            "rate": self.rate,
            "py_spy_cpu_s": self.py_spy_cpu_s,
            "py_spy_errors": self.py_spy_errors,
            "py_spy_behind_s": self.py_spy_behind_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProfileSummary:
        def pairs(key: str) -> list[tuple[str, int]]:
            return [(str(label), int(n)) for label, n in data.get(key, [])]

        return cls(
            samples=int(data.get("samples", 0)),
            areas={str(k): int(v) for k, v in data.get("areas", {}).items()},
            areas_inclusive={str(k): int(v) for k, v in data.get("areas_inclusive", {}).items()},
            top_self=pairs("top_self"),
            top_inclusive=pairs("top_inclusive"),
            top_ours=pairs("top_ours"),
            workers=int(data.get("workers", 0)),
            files=[str(f) for f in data.get("files", [])],
            rate=int(data.get("rate", RATE)),
            py_spy_cpu_s=float(data.get("py_spy_cpu_s", 0.0)),
            py_spy_errors=int(data.get("py_spy_errors", 0)),
            py_spy_behind_s=float(data.get("py_spy_behind_s", 0.0)),
        )


def summarize(stacks: Iterable[Stack], top: int = TOP) -> ProfileSummary:
    areas: Counter[str] = Counter()
    under: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    workers: set[int] = set()
    samples = 0
    for stack in stacks:
        samples += stack.count
        areas[attribute(stack.frames)] += stack.count
        if stack.worker is not None:
            workers.add(stack.worker)
        if not stack.frames:
            continue
        found = {a for frame in stack.frames if (a := area_of(frame)) is not None}
        if is_waiting(stack.frames[-1]):
            found.add(IDLE)
        for area in found:
            under[area] += stack.count
        own[stack.frames[-1].label] += stack.count
        # Once per stack: a recursive function is not counted twice.
        for label in {frame.label for frame in stack.frames}:
            inclusive[label] += stack.count
        for label in {frame.label for frame in stack.frames if _is_ours(frame)}:
            ours[label] += stack.count
    return ProfileSummary(
        samples=samples,
        areas=dict(areas.most_common()),
        areas_inclusive=dict(under.most_common()),
        top_self=own.most_common(top),
        top_inclusive=inclusive.most_common(top),
        top_ours=ours.most_common(top),
        workers=len(workers),
    )


def summarize_files(paths: Sequence[Path], top: int = TOP) -> ProfileSummary:
    """One summary of one or more py-spy raw files (the rounds of one scenario)."""
    stacks: list[Stack] = []
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as lines:
            stacks.extend(parse_collapsed(lines))
    summary = summarize(stacks, top)
    summary.files = [_relative(path) for path in paths]
    return summary


def merge(summaries: Sequence[ProfileSummary]) -> ProfileSummary:
    """The rounds of one scenario as one summary, read again from their files (the top
    lists of each round alone could not be added up exactly)."""
    paths = [REPO_ROOT / name for summary in summaries for name in summary.files]
    merged = summarize_files([path for path in paths if path.exists()])
    merged.files = [name for summary in summaries for name in summary.files]
    merged.py_spy_cpu_s = sum(summary.py_spy_cpu_s for summary in summaries)
    merged.py_spy_errors = sum(summary.py_spy_errors for summary in summaries)
    merged.py_spy_behind_s = max(summary.py_spy_behind_s for summary in summaries)
    return merged


def _relative(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    return str(path)


# --- recording ---------------------------------------------------------------------------


def py_spy_binary() -> str | None:
    """py-spy from our virtualenv (it is in requirements-dev.txt), else from PATH."""
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


_WROTE = re.compile(r"Samples: (?P<samples>\d+) Errors: (?P<errors>\d+)")
_BEHIND = re.compile(r"(?P<seconds>[0-9.]+)s behind in sampling")


class Recording:
    """One ``py-spy record`` of a process tree, started by us, stopped by its PID.

    Making one returns once py-spy says it is sampling, so the load that follows is what
    gets sampled. ``finish`` waits for it to end on its own (``--duration``) and reads the
    CPU it used before reaping it: the runner's load-generator CPU comes from
    ``RUSAGE_CHILDREN``, which must not include the profiler."""

    def __init__(self, pid: int, duration_s: float, output: Path, rate: int = RATE) -> None:
        binary = py_spy_binary()
        if binary is None:
            raise RuntimeError(MISSING)
        self.pid = pid
        self.output = output
        self.log = output.with_suffix(".py-spy.log")
        self.rate = rate
        self.duration_s = max(1, round(duration_s))
        output.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            str(rate),
            "--nonblocking",
            "--full-filenames",
            "--duration",
            str(self.duration_s),
            "--output",
            str(output),
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own argv
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        self._wait_until_sampling()

    def _wait_until_sampling(self) -> None:
        deadline = time.monotonic() + ATTACH_TIMEOUT
        while time.monotonic() < deadline:
            if "Sampling process" in self._log_text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.abort()
        raise RuntimeError(
            f"py-spy could not sample gunicorn (PID {self.pid}); it needs ptrace rights"
            f" (root, or CAP_SYS_PTRACE / kernel.yama.ptrace_scope=0):\n{self._log_text()}"
        )

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def _exited(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for py-spy to exit, leaving it unreaped (its CPU time
        stays readable in /proc)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return True  # already reaped
            if found is not None:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def stop(self) -> None:
        """The scenario is over: stop sampling now, unless py-spy already has. It counts
        samples, not seconds, so when it falls behind its rate (a loaded machine) its
        ``--duration`` would run on into whatever the runner does next. Ctrl-C (SIGINT)
        makes it write what it has. Sent by PID: ``Popen.send_signal`` would reap it."""
        if not self._exited(0):
            os.kill(self.proc.pid, signal.SIGINT)

    def finish(self) -> ProfileSummary | None:
        """Wait for the recording and summarize it; None (and the reason in the log
        file) if py-spy wrote nothing."""
        if not self._exited(self.duration_s + 30):
            os.kill(self.proc.pid, signal.SIGINT)  # overdue: write what you have
            if not self._exited(15):
                self.proc.kill()
        cpu_s = process_cpu_s(self.proc.pid)
        self.proc.wait()
        if not self.output.exists():
            return None
        summary = summarize_files([self.output])
        summary.rate = self.rate
        summary.py_spy_cpu_s = cpu_s
        log = self._log_text()
        wrote = _WROTE.search(log)
        if wrote:
            summary.py_spy_errors = int(wrote.group("errors"))
        summary.py_spy_behind_s = max(
            (float(m.group("seconds")) for m in _BEHIND.finditer(log)), default=0.0
        )
        return summary

    def abort(self) -> None:
        """Stop py-spy (ours, by PID) after a failure elsewhere."""
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
