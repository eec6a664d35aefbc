"""``--profile``: where the app's CPU goes while wrk runs a scenario of ours.

``py-spy record --subprocesses --nonblocking --gil`` samples gunicorn's master and every
worker, only the thread holding the GIL (Python's own CPU, not a thread waiting on a
socket or a lock), into collapsed stacks (``frame;frame;… count``, for flamegraph.pl or
speedscope) under ``instance/bench/profiles/<run>/``; the run prints each scenario's
busiest functions by their own samples. py-spy comes from requirements-dev.txt and needs
ptrace rights (root or CAP_SYS_PTRACE); on two cores it takes about a core itself, so read
the shares, not the rates, of a profiled run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.servers import BIN


def py_spy() -> str | None:
    local = BIN / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Recording:
    """py-spy on ``pid`` and its children for ``duration_s``, into ``output``."""

    def __init__(self, pid: int, duration_s: float, output: Path) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("py-spy is missing: pip install -r requirements-dev.txt")
        output.parent.mkdir(parents=True, exist_ok=True)
        self.output = output
        argv = [binary, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--gil"]
        argv += ["--rate", "200", "--format", "raw", "--output", str(output)]
        argv += ["--duration", str(int(duration_s) + 2)]
        self.proc = subprocess.Popen(  # noqa: S603 - our own argv
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def finish(self, top: int = 8) -> str:
        """Wait for py-spy; the busiest functions, by their own samples."""
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        return busiest(self.output, top) if self.output.exists() else "py-spy wrote nothing"


def busiest(path: Path, top: int) -> str:
    """The shares of the samples by package of the innermost frame (``psycopg``,
    ``sqlalchemy``, ``lootbox``, a standard-library module …), then the ``top`` innermost
    functions, from a collapsed-stacks file."""
    functions: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            functions[stack.rsplit(";", 1)[-1]] += int(count)
    packages: Counter[str] = Counter()
    for frame, n in functions.items():
        where = frame.rpartition(" (")[2].split("/")[0].split(":")[0]
        packages[where.removesuffix(".py").strip("<>")] += n
    total = sum(functions.values()) or 1
    shares = ", ".join(f"{name} {n * 100 / total:.0f} %" for name, n in packages.most_common(top))
    lines = [f"  {n * 100 / total:5.1f} %  {frame}" for frame, n in functions.most_common(top)]
    return "\n".join([f"by package: {shares}", *lines])


if __name__ == "__main__":
    print(busiest(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 20))
