"""What a run produces: one ``Row`` per scenario, the counts behind it, the run's record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from statistics import median
from typing import Any


@dataclass
class Counts:
    """What one request costs on the servers, from the counting pass (exact, sequential)
    or, for the Redis commands and the app's metrics, under load."""

    requests: int = 0
    sql_statements: float | None = None  # without BEGIN/COMMIT/ROLLBACK
    sql_transactions: float | None = None
    sql_breakdown: dict[str, float] = field(default_factory=dict)
    redis_round_trips: float | None = None
    redis_commands: float | None = None  # round trips + commands run inside scripts
    redis_breakdown: dict[str, float] = field(default_factory=dict)
    metrics_sql: float | None = None
    metrics_redis: float | None = None
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass
class Row:
    key: str
    label: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    duration_s: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    socket_errors: int = 0
    pool: int | None = None
    exhausted: bool = False
    ratio: float | None = None
    cpu_busy: float | None = None
    cpu_others: float | None = None  # share of all cores used by processes not ours
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU ms per request, by part
    loadavg: float | None = None
    load: Counts = field(default_factory=Counts)
    exact: Counts | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    size: int | None = None  # items already in the database (scaling run)

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    @property
    def flags(self) -> list[str]:
        found = []
        if self.errors:
            found.append(f"{self.errors} errors ({_statuses(self.statuses)})")
        if self.exhausted:
            found.append("pool exhausted: req/s understated")
        if self.exact is not None:
            failed = sum(n for status, n in self.exact.statuses.items() if not 200 <= status < 300)
            if failed:
                found.append(f"counting pass: {failed} errors ({_statuses(self.exact.statuses)})")
        credits = self.extra.get("wallet_credits")
        if credits is not None and credits != 1:
            found.append(f"{credits} wallet credits (must be 1)")
        return found

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["flags"] = self.flags
        data["non_2xx"] = self.non_2xx
        return data


def _counts_from_json(data: dict[str, Any]) -> Counts:
    data = dict(data)
    data["statuses"] = {int(k): int(v) for k, v in data.get("statuses", {}).items()}
    return Counts(**data)


def row_from_json(data: dict[str, Any]) -> Row:
    """A ``Row`` back from ``Row.to_json`` (JSON turned its status codes into strings)."""
    data = {k: v for k, v in data.items() if k not in ("flags", "non_2xx")}
    data["statuses"] = {int(k): int(v) for k, v in data.get("statuses", {}).items()}
    data["load"] = _counts_from_json(data.get("load") or {})
    if data.get("exact") is not None:
        data["exact"] = _counts_from_json(data["exact"])
    return Row(**data)


def _statuses(statuses: dict[int, int]) -> str:
    return ", ".join(f"{status}×{n}" for status, n in sorted(statuses.items()) if status != 200)


@dataclass
class Run:
    mode: str
    command: str
    started_at: str
    rows: list[Row] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def row(self, key: str, size: int | None = None) -> Row | None:
        for row in self.rows:
            if row.key == key and row.size == size:
                return row
        return None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        return cls(
            mode=data["mode"],
            command=data["command"],
            started_at=data["started_at"],
            rows=[row_from_json(row) for row in data["rows"]],
            record=data["record"],
            memory=data["memory"],
            elapsed_s=data["elapsed_s"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "command": self.command,
            "started_at": self.started_at,
            "elapsed_s": self.elapsed_s,
            "rows": [row.to_json() for row in self.rows],
            "record": self.record,
            "memory": self.memory,
        }


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return median(present) if present else None


_PAIRED = ("paired_ratio", "paired_baseline_rps")


def _paired(samples: list[Row]) -> dict[str, float]:
    """The median of the rounds' ratios to their own paired baselines (not the ratio of
    the medians: each round is compared with the baseline measured next to it)."""
    paired = [r for r in samples if r.extra.get("paired_ratio") is not None]
    ratios = [r.extra["paired_ratio"] for r in paired]
    baselines = [r.extra["paired_baseline_rps"] for r in paired]
    if len(ratios) != len(samples):
        return {}
    return {"paired_ratio": median(ratios), "paired_baseline_rps": median(baselines)}


def aggregate(samples: list[Row]) -> Row:
    """Rounds of one scenario as one row: medians of the rates, latencies and costs, sums
    of the counts, any flag of any round. The rounds stay listed in ``extra["samples"]``."""
    if len(samples) == 1:
        return samples[0]
    first = samples[0]
    statuses: dict[int, int] = {}
    for row in samples:
        for status, n in row.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    parts = {part for row in samples for part in row.cpu_ms}
    return Row(
        key=first.key,
        label=first.label,
        rps=_median([r.rps for r in samples]),
        p50_ms=_median([r.p50_ms for r in samples]),
        p99_ms=_median([r.p99_ms for r in samples]),
        requests=sum(r.requests for r in samples),
        duration_s=sum(r.duration_s for r in samples),
        statuses=statuses,
        socket_errors=sum(r.socket_errors for r in samples),
        pool=first.pool,
        exhausted=any(r.exhausted for r in samples),
        cpu_busy=_median([r.cpu_busy for r in samples]),
        cpu_others=_median([r.cpu_others for r in samples]),
        loadavg=_median([r.loadavg for r in samples]),
        cpu_ms={
            part: median([r.cpu_ms[part] for r in samples if part in r.cpu_ms])
            for part in sorted(parts)
        },
        load=Counts(
            requests=sum(r.load.requests for r in samples),
            redis_commands=_median([r.load.redis_commands for r in samples]),
            metrics_sql=_median([r.load.metrics_sql for r in samples]),
            metrics_redis=_median([r.load.metrics_redis for r in samples]),
        ),
        extra={
            **{k: v for k, v in first.extra.items() if k not in _PAIRED},
            **_paired(samples),
            "samples": [
                {
                    "rps": r.rps,
                    "paired_ratio": r.extra.get("paired_ratio"),
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                    "others": r.cpu_others,
                    "cpu_ms_total": sum(r.cpu_ms.values()),
                    "extra": r.extra,
                }
                for r in samples
            ],
        },
        size=first.size,
    )
