"""Redis clients for the idempotency fast path, made from ``REDIS_URL``: one server
(``redis://``, ``rediss://``, ``unix://``), Sentinel (``redis+sentinel://``) or Cluster
(``redis+cluster://``). Each records its failures (``lootbox_redis_errors_total``), gives
up fast (the database is the guarantee), and connects on first use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import parse_url
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

from lootbox.observability.metrics import record_redis_error

log = logging.getLogger(__name__)


# --- recording failures ------------------------------------------------------------------


def _record_failure(exc: RedisError) -> None:
    # NOSCRIPT is the script cache missing after a Redis restart or SCRIPT FLUSH: redis-py
    # loads the script and calls again by itself, so it is no sign of trouble.
    if isinstance(exc, NoScriptError):
        return
    if isinstance(exc, RedisTimeoutError):
        record_redis_error("timeout")
    elif isinstance(exc, RedisConnectionError):
        record_redis_error("connection")
    else:
        record_redis_error("other")


class MonitoredClient:
    """Records every failed command (``lootbox_redis_errors_total``, which on-call alerts
    on) at the single door all commands of a redis-py client go through. The app sends no
    pipelines, so they have no door of their own."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)  # type: ignore[misc]
        except RedisError as exc:
            _record_failure(exc)
            raise


class MonitoredRedis(MonitoredClient, redis.Redis):
    """``redis.Redis`` that records its failures."""


class ClusterUnavailable(RedisConnectionError):
    """No node of the Redis Cluster could be used (``RedisClusterException`` as a
    ``RedisError``)."""


class ClusterNodeRefused(RedisError):
    """A ``redis://`` client whose server is a Redis Cluster node (``StandaloneRedis``)."""


class MonitoredRedisCluster(MonitoredClient, RedisCluster):
    """``RedisCluster`` that records its failures as ``MonitoredRedis`` does, at the same
    door: one per command the app sends, whatever redirects, layout reads or nodes the
    cluster client goes through below it."""

    # What the cluster client retries once, after reading the layout again: a dropped
    # connection, a cluster that was reconfiguring. Not a timeout, as with one server
    # (``_fast_retry``).
    ERRORS_ALLOW_RETRY = (  # type: ignore[assignment]  # fewer than the base's
        RedisConnectionError,
        ClusterDownError,
        SlotNotCoveredError,
    )

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)
        except RedisClusterException as exc:
            # "No node reachable", "slot not covered": not RedisErrors in redis-py, but
            # callers (the store, the probes) treat every RedisError as "Redis is away".
            record_redis_error("connection")
            raise ClusterUnavailable(str(exc)) from exc


class LazyRedisCluster:
    """``MonitoredRedisCluster`` made on its first command. ``RedisCluster`` reads the
    cluster's layout in its constructor, that is, it connects when made; this keeps the
    app's promise that nothing connects before first use, and lets the app start while the
    cluster is away (its commands then fail, and the database answers, as with one Redis
    that is down). Every attribute but those below is the cluster client's."""

    def __init__(self, make: Callable[[], MonitoredRedisCluster]) -> None:
        self._make = make
        self._client: MonitoredRedisCluster | None = None
        self._lock = threading.Lock()

    def cluster(self) -> MonitoredRedisCluster:
        """The cluster client, made on the first call (again on the next if it failed)."""
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._make()
                except RedisClusterException as exc:
                    record_redis_error("connection")
                    raise ClusterUnavailable(str(exc)) from exc
                except RedisError as exc:
                    _record_failure(exc)
                    raise
            return self._client

    def register_script(self, script: str) -> Script:
        # A script is its text and its SHA1 until it is called: nothing to connect for.
        return Script(self, script.encode("utf-8"))  # type: ignore[arg-type]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.cluster(), name)


class StandaloneRedis(MonitoredRedis):
    """``MonitoredRedis`` for one server (``redis://``, ``rediss://``) that makes sure, on
    its first command, that the server is not a Redis Cluster node. A plain client of a
    cluster node reaches that node's slots only; every key of another node's slots would
    answer MOVED, and the fast path would quietly work for a fraction of the keys. Such a
    client refuses every command instead (``ClusterNodeRefused``, a ``RedisError``): the
    log and ``/readyz`` say to use ``redis+cluster://``, and the database guard serves every
    request meanwhile.

    The check (``INFO cluster``) is sent once per client, before its first command, so
    nothing connects before first use. A server that refuses ``INFO`` (an ACL, a renamed
    command) is taken for a single server.
    """

    _checked = False
    _refusal: str | None = None

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self._check_server()
        return super().execute_command(*args, **options)

    def _check_server(self) -> None:
        if self._checked:
            return
        if self._refusal is None:
            try:
                info = redis.Redis.execute_command(self, "INFO", "cluster")
            except ResponseError:
                info = {}  # INFO refused: cannot tell, so as before
            except RedisError as exc:
                _record_failure(exc)
                raise  # no answer: check again on the next command
            if not info.get("cluster_enabled"):
                self._checked = True
                return
            kwargs = self.connection_pool.connection_kwargs
            self._refusal = (
                "REDIS_URL points at a Redis Cluster node: use"
                f" redis+cluster://{kwargs.get('host')}:{kwargs.get('port')} (a redis:// client"
                " reaches that node's slots only; the other keys answer MOVED). Until then"
                " idempotency runs on the database alone"
            )
            log.error("%s", self._refusal)
        record_redis_error("other")
        raise ClusterNodeRefused(self._refusal)


# --- REDIS_URL ------------------------------------------------------------------------------

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
SENTINEL_URL_FORM = (
    "redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/service-name[/db]"
)
CLUSTER_URL_FORM = "redis+cluster://[[username]:password@]host[:port][,host[:port]...]"


@dataclass(frozen=True)
class SentinelUrl:
    """A ``redis+sentinel://`` URL, read: where the Sentinels are (port 26379 unless
    given), the name they know the primary by, and how to talk to the primary (``db``,
    ``username``, ``password``, redis-py's query options). ``?sentinel_password=`` is the
    Sentinels' own password, if they have one."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    connection_kwargs: dict[str, Any]
    sentinel_password: str | None = None


@dataclass(frozen=True)
class ClusterUrl:
    """A ``redis+cluster://`` URL, read: some of the cluster's nodes (port 6379 unless
    given; any one that answers tells the client the rest) and how to talk to every node
    (``username``, ``password``, redis-py's query options; database 0 only)."""

    nodes: tuple[tuple[str, int], ...]
    connection_kwargs: dict[str, Any]


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Read a ``redis+sentinel://`` URL (README, Configuration); ``ValueError`` says
    what is wrong with it, without repeating it (it may hold a password)."""
    parts, hosts, kwargs = _split_url(url, SENTINEL_SCHEME, SENTINEL_URL_FORM, 26379)
    names = [unquote(name) for name in parts.path.split("/")[1:]]
    if names and names[-1] == "":
        names.pop()  # a trailing slash
    if not 1 <= len(names) <= 2 or not names[0]:
        raise ValueError(f"REDIS_URL must name the Sentinels' primary: {SENTINEL_URL_FORM}")
    if len(names) == 2:
        kwargs.setdefault("db", _database(names[1], SENTINEL_URL_FORM))
    sentinel_password = kwargs.pop("sentinel_password", None)
    return SentinelUrl(hosts, names[0], kwargs, sentinel_password)


def parse_cluster_url(url: str) -> ClusterUrl:
    """Read a ``redis+cluster://`` URL (README, Configuration); ``ValueError`` says
    what is wrong with it, without repeating it."""
    parts, hosts, kwargs = _split_url(url, CLUSTER_SCHEME, CLUSTER_URL_FORM, 6379)
    path = parts.path.strip("/")
    database = kwargs.pop("db", _database(path, CLUSTER_URL_FORM) if path else 0)
    if database != 0:
        raise ValueError("REDIS_URL: a Redis Cluster has database 0 only")
    return ClusterUrl(hosts, kwargs)


def _split_url(
    url: str, scheme: str, form: str, default_port: int
) -> tuple[SplitResult, tuple[tuple[str, int], ...], dict[str, Any]]:
    """The URL's parts, its hosts, and the client options in its user info and query
    (read by redis-py, as for a ``redis://`` URL)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != scheme:
        raise ValueError(f"REDIS_URL must look like {form}")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    hosts = tuple(_host_and_port(host, default_port, form) for host in hostlist.split(","))
    auth = f"{userinfo}@" if userinfo else ""
    query = f"?{parts.query}" if parts.query else ""
    kwargs = parse_url(f"redis://{auth}localhost{query}")
    kwargs.pop("host", None)
    return parts, hosts, kwargs


def _host_and_port(text: str, default_port: int, form: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
    else:
        host, _, port = text.partition(":")
    if not host or not (port == "" or (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"REDIS_URL has a malformed host or port: {form}")
    return unquote(host), int(port) if port else default_port


def _database(text: str, form: str) -> int:
    if not text.isdigit():
        raise ValueError(f"REDIS_URL's database must be a number: {form}")
    return int(text)


def _fast_retry() -> Retry:
    # redis-py's default is 10 retries with backoff, timeouts included: seconds per call
    # while Redis is down. A fast path must give up quickly and let the database answer,
    # so: one immediate retry, on a connection dropped mid-command only (claim recognises
    # its own record if the first attempt did land), and none on timeouts. This replaces
    # ``retry_on_timeout=False``, deprecated since redis-py 6. Idle sockets that died with
    # a restarted server are already replaced by the pool before use; nothing here holds a
    # connection itself.
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def make_redis_client(
    url: str, *, socket_timeout: float = 0.5, connect_timeout: float = 0.5
) -> redis.Redis | LazyRedisCluster:
    """A Redis client for ``url``. Each records its failures (``MonitoredRedis``,
    ``MonitoredRedisCluster``), and none connects before its first command.

    - ``redis://`` or ``rediss://``: one server (``StandaloneRedis``, which refuses a
      server that turns out to be a Redis Cluster node).
    - ``redis+sentinel://``: the primary that the Sentinels name, found again after a
      failover (``parse_sentinel_url``).
    - ``redis+cluster://``: a Redis Cluster (``parse_cluster_url``).

    No URL, or a malformed one, is a ``ValueError``: the app does not start.

    Responses are bytes (``decode_responses=False``): a value that is not UTF-8 then
    reaches ``_decode`` and is treated as absent instead of raising inside the client.
    """
    if not url:
        raise ValueError(
            "REDIS_URL is not set: point it at a Redis ('python3 dev.py serve' starts an"
            " embedded one when it is unset)"
        )
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": 30,
        "decode_responses": False,
    }
    scheme = url.partition("://")[0].lower()
    if scheme == SENTINEL_SCHEME:
        return _sentinel_client(parse_sentinel_url(url), options)
    if scheme == CLUSTER_SCHEME:
        return _cluster_client(parse_cluster_url(url), options)
    if scheme in ("rediss+sentinel", "rediss+cluster"):
        raise ValueError("REDIS_URL: TLS to a Sentinel or a Redis Cluster is not supported")
    return StandaloneRedis.from_url(url, retry=_fast_retry(), **options)


def _sentinel_client(parsed: SentinelUrl, options: dict[str, Any]) -> MonitoredRedis:
    """The primary's client: before each new connection it asks the Sentinels, in turn,
    where the primary is, so after a failover it reconnects to the new one by itself."""
    sentinels = Sentinel(
        list(parsed.sentinels),
        sentinel_kwargs={
            "socket_timeout": options["socket_timeout"],
            "socket_connect_timeout": options["socket_connect_timeout"],
            # A Sentinel that does not answer is skipped for the next one, not retried.
            "retry": Retry(NoBackoff(), 0),
            "password": parsed.sentinel_password,
        },
    )
    client: MonitoredRedis = sentinels.master_for(
        parsed.service_name,
        redis_class=MonitoredRedis,
        **({"retry": _fast_retry()} | options | parsed.connection_kwargs),
    )
    return client


def _cluster_client(parsed: ClusterUrl, options: dict[str, Any]) -> LazyRedisCluster:
    # redis-py gives each node's client the timeouts and decode_responses, and drops
    # health_check_interval (and any option it does not know): a socket that died idle is
    # still replaced by the node's pool before use, as with one server.
    def make() -> MonitoredRedisCluster:
        return MonitoredRedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
            retry=Retry(NoBackoff(), 1),  # which errors: ``ERRORS_ALLOW_RETRY``
            **(options | parsed.connection_kwargs),
        )

    return LazyRedisCluster(make)
