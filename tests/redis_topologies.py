"""Redis beyond one server, for tests: a primary with a replica watched by Sentinels, and a
Redis Cluster of three primaries.

Every process is a private redis-server of ours (``redis-server --sentinel`` for a
Sentinel) on a free port of 127.0.0.1, with its files in a temporary directory of its own,
and is stopped by its PID when the ``with`` block ends. The timings are short (a primary is
down after 1 s without an answer) so that a failover takes seconds, not minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from tests.processes import free_port, stop_process, tail, wait_until
from tests.redis_server import (
    REDIS_SERVER,
    START_TIMEOUT,
    PrivateRedis,
    _answers_ping,
    start_private_redis,
)

REDIS_CLI = "/usr/bin/redis-cli"
APT_PACKAGES = ("redis-server", "redis-tools")  # redis-tools has redis-cli
SERVICE = "lootbox"  # the name the Sentinels know the primary by
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
SETUP_TIMEOUT = 30.0


def _executable(path: str) -> bool:
    return os.path.exists(path) and os.access(path, os.X_OK)


def require_redis_binaries() -> None:
    """redis-server (which is also the Sentinel, with ``--sentinel``) and redis-cli.
    Installed with apt-get when missing and we are root; otherwise the test fails, saying
    what to install (never a skip: these tests guard the money path)."""
    missing = [path for path in (REDIS_SERVER, REDIS_CLI) if not _executable(path)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        install = ["apt-get", "install", "-y", *APT_PACKAGES]
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, capture_output=True, env=env, timeout=300).returncode:
            subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=300)
            subprocess.run(install, capture_output=True, env=env, timeout=300)
        missing = [path for path in missing if not _executable(path)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install them (apt-get install -y"
            f" {' '.join(APT_PACKAGES)}) to run the Sentinel and Cluster tests"
        )


def _client(port: int) -> redis.Redis:
    """A plain client of one process of ours (the test's own, never the app's)."""
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True)


def _info(port: int, section: str) -> dict[str, Any]:
    with _client(port) as client:
        return dict(client.info(section))


# --- Sentinel -------------------------------------------------------------------------------


class PrivateSentinel:
    """One ``redis-server --sentinel`` watching ``SERVICE``; its config file (which the
    Sentinel rewrites with what it learns) in ``workdir``."""

    def __init__(self, port: int, workdir: Path, primary_port: int) -> None:
        self.port = port
        self.workdir = workdir
        self.config = workdir / "sentinel.conf"
        self.config.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    "daemonize no",
                    f"dir {workdir}",
                    f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1",
                    f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
                    f"sentinel parallel-syncs {SERVICE} 1",
                    "",
                ]
            )
        )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        with (self.workdir / "sentinel.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [REDIS_SERVER, str(self.config), "--sentinel"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self._proc.poll() is None:
            if _answers_ping(self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"sentinel on port {self.port} did not start:\n{tail(self.workdir / 'sentinel.log')}"
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout=5)

    def master(self) -> dict[str, Any]:
        """What this Sentinel knows of ``SERVICE`` (``SENTINEL MASTER``)."""
        with _client(self.port) as client:
            return dict(client.sentinel_master(SERVICE))

    def primary_port(self) -> int | None:
        with _client(self.port) as client:
            address = client.sentinel_get_master_addr_by_name(SERVICE)
        return int(address[1]) if address else None


@dataclass
class SentinelGroup:
    primary: PrivateRedis
    replica: PrivateRedis
    sentinels: list[PrivateSentinel]

    def url(self, *, unreachable_first: int | None = None) -> str:
        """``redis+sentinel://`` listing every Sentinel; with ``unreachable_first``, a port
        nothing listens on comes first (a Sentinel that is down)."""
        ports = [s.port for s in self.sentinels]
        if unreachable_first is not None:
            ports.insert(0, unreachable_first)
        return f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in ports)}/{SERVICE}"

    def wait_for_promotion(self, timeout: float = 30.0) -> PrivateRedis:
        """Wait until every Sentinel names the replica as the primary and it acts as one."""

        def promoted() -> bool:
            named = all(s.primary_port() == self.replica.port for s in self.sentinels)
            return named and _info(self.replica.port, "replication")["role"] == "master"

        wait_until(promoted, timeout, "the Sentinels to promote the replica")
        return self.replica


def _wait_for_sentinels(group: SentinelGroup) -> None:
    """Until each Sentinel sees the primary up, its replica and every other Sentinel:
    only then can they agree on a failover."""

    def ready() -> bool:
        for sentinel in group.sentinels:
            master = sentinel.master()
            if (
                master.get("is_sdown")
                or master.get("is_odown")
                or master.get("num-slaves", 0) < 1
                or master.get("num-other-sentinels", 0) < len(group.sentinels) - 1
            ):
                return False
        return True

    wait_until(ready, SETUP_TIMEOUT, "the Sentinels to see the primary, the replica and each other")


@contextmanager
def sentinel_group(sentinels: int = 3) -> Iterator[SentinelGroup]:
    """A primary, its replica and ``sentinels`` Sentinels (quorum 1, a primary is down
    after 1 s), all started and in agreement; everything stopped (by PID) on exit."""
    require_redis_binaries()
    root = Path(tempfile.mkdtemp(prefix="lootbox-sentinel-"))
    try:
        with ExitStack() as stack:
            (root / "primary").mkdir()
            primary = start_private_redis(
                REDIS_SERVER,
                root / "primary",
                # Redis waits 5 s for more replicas before a full sync: ours come one by one.
                extra_args=["--repl-diskless-sync-delay", "0"],
            )
            stack.callback(primary.stop)
            (root / "replica").mkdir()
            replica = start_private_redis(
                REDIS_SERVER,
                root / "replica",
                extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
            )
            stack.callback(replica.stop)
            wait_until(
                lambda: _info(replica.port, "replication").get("master_link_status") == "up",
                SETUP_TIMEOUT,
                "the replica to sync with the primary",
            )
            group = SentinelGroup(primary, replica, [])
            for n in range(sentinels):
                workdir = root / f"sentinel-{n}"
                workdir.mkdir()
                sentinel = PrivateSentinel(free_port(), workdir, primary.port)
                sentinel.start()
                stack.callback(sentinel.stop)
                group.sentinels.append(sentinel)
            _wait_for_sentinels(group)
            yield group
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- Cluster --------------------------------------------------------------------------------


@dataclass
class RedisClusterNodes:
    nodes: list[PrivateRedis]

    @property
    def url(self) -> str:
        """``redis+cluster://`` listing every node (any one would do)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def slot_owners(self) -> dict[int, PrivateRedis]:
        """Which node serves each slot, as the cluster says (``CLUSTER SLOTS``)."""
        by_port = {n.port: n for n in self.nodes}
        with _client(self.nodes[0].port) as client:
            ranges = client.execute_command("CLUSTER", "SLOTS")
        owners: dict[int, PrivateRedis] = {}
        for first, last, primary, *_ in ranges:
            for slot in range(int(first), int(last) + 1):
                owners[slot] = by_port[int(primary[1])]
        return owners

    def node_for(self, key: str) -> PrivateRedis:
        """The node that holds ``key``."""
        return self.slot_owners()[key_slot(key.encode())]

    @contextmanager
    def client_of(self, node: PrivateRedis) -> Iterator[redis.Redis]:
        """A plain client of one node: it sees that node's keys only."""
        with _client(node.port) as client:
            yield client


def _cluster_ok(nodes: list[PrivateRedis]) -> bool:
    for node in nodes:
        info = _info_cluster(node.port)
        if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(len(nodes)):
            return False
    return True


def _info_cluster(port: int) -> dict[str, str]:
    with _client(port) as client:
        text = str(client.execute_command("CLUSTER", "INFO"))
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


@contextmanager
def redis_cluster(primaries: int = 3) -> Iterator[RedisClusterNodes]:
    """A Redis Cluster of ``primaries`` primaries and no replicas, made with
    ``redis-cli --cluster create``, its slots spread over the nodes; every node stopped (by
    PID) on exit."""
    require_redis_binaries()
    root = Path(tempfile.mkdtemp(prefix="lootbox-cluster-"))
    try:
        with ExitStack() as stack:
            nodes: list[PrivateRedis] = []
            for n in range(primaries):
                workdir = root / f"node-{n}"
                workdir.mkdir()
                node = start_private_redis(
                    REDIS_SERVER,
                    workdir,
                    extra_args=[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(workdir / "nodes.conf"),
                        "--cluster-node-timeout",
                        "2000",
                        # The bus port is the data port + 10000 unless set: out of range
                        # for a free port above 55535.
                        "--cluster-port",
                        str(free_port()),
                    ],
                )
                stack.callback(node.stop)
                nodes.append(node)
            created = subprocess.run(
                [
                    REDIS_CLI,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{node.port}" for node in nodes),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                capture_output=True,
                timeout=SETUP_TIMEOUT,
                check=False,
            )
            if created.returncode != 0:
                raise RuntimeError(
                    "redis-cli --cluster create failed:\n"
                    + created.stdout.decode(errors="replace")[-2000:]
                    + created.stderr.decode(errors="replace")[-2000:]
                )
            wait_until(lambda: _cluster_ok(nodes), SETUP_TIMEOUT, "the cluster to be ok")
            yield RedisClusterNodes(nodes)
    finally:
        shutil.rmtree(root, ignore_errors=True)
