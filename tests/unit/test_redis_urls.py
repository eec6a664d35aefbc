"""REDIS_URL beyond one server: the ``redis+sentinel://`` and ``redis+cluster://`` forms
as the app reads them, and the clients made from them, which connect to nothing until
their first command (nothing listens on the ports used here)."""

from __future__ import annotations

import pytest

from lootbox.idempotency.redis_clients import (
    LazyRedisCluster,
    MonitoredRedis,
    StandaloneRedis,
    make_redis_client,
    parse_cluster_url,
    parse_sentinel_url,
)

PASSWORD = "s3cr@t:/,"  # every character that means something in a URL
QUOTED = "s3cr%40t%3A%2F%2C"


# --- redis+sentinel:// ------------------------------------------------------------------------


def test_a_sentinel_url_lists_sentinels_the_primary_s_name_and_its_database() -> None:
    parsed = parse_sentinel_url(
        f"redis+sentinel://:{QUOTED}@10.0.0.1:26380,sentinel-b,[::1]:26381/my%20primary/2"
    )

    assert parsed.sentinels == (("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 26381))
    assert parsed.service_name == "my primary"
    assert parsed.connection_kwargs == {"password": PASSWORD, "db": 2}
    assert parsed.sentinel_password is None


def test_a_sentinel_url_may_carry_a_username_options_and_the_sentinels_own_password() -> None:
    parsed = parse_sentinel_url(
        "redis+sentinel://app:pw@h1:1,h2:2/lootbox/?sentinel_password=sp&socket_timeout=0.2"
    )

    assert parsed.sentinels == (("h1", 1), ("h2", 2))
    assert parsed.service_name == "lootbox"
    assert parsed.connection_kwargs == {"username": "app", "password": "pw", "socket_timeout": 0.2}
    assert parsed.sentinel_password == "sp"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        (f"redis+sentinel://:{QUOTED}@h:26379", "must name the Sentinels' primary"),
        (f"redis+sentinel://:{QUOTED}@h:26379/", "must name the Sentinels' primary"),
        (f"redis+sentinel://:{QUOTED}@h/lootbox/0/1", "must name the Sentinels' primary"),
        (f"redis+sentinel://:{QUOTED}@h/lootbox/zero", "database must be a number"),
        (f"redis+sentinel://:{QUOTED}@h:99999/lootbox", "malformed host or port"),
        (f"redis+sentinel://:{QUOTED}@h:port/lootbox", "malformed host or port"),
        (f"redis+sentinel://:{QUOTED}@h1,,h2/lootbox", "malformed host or port"),
        (f"redis+sentinel://:{QUOTED}@/lootbox", "malformed host or port"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_without_repeating_it(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as refused:
        make_redis_client(url)

    assert "redis+sentinel://[[username]:password@]host[:port]" in str(refused.value)
    assert QUOTED not in str(refused.value) and PASSWORD not in str(refused.value)


def test_a_sentinel_client_is_a_monitored_client_of_the_primary_and_connects_on_first_use() -> None:
    client = make_redis_client("redis+sentinel://127.0.0.1:1,127.0.0.1:2/lootbox/3")

    assert type(client) is MonitoredRedis  # a Sentinel's primary is never a cluster node
    kwargs = client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert kwargs["socket_timeout"] == 0.5 and kwargs["socket_connect_timeout"] == 0.5
    assert kwargs["health_check_interval"] == 30 and kwargs["decode_responses"] is False
    assert kwargs["db"] == 3
    assert kwargs["retry"].get_retries() == 1
    sentinels = client.connection_pool.sentinel_manager.sentinels  # type: ignore[union-attr]
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [1, 2]
    for sentinel in sentinels:  # each asked once, quickly: a silent one is skipped
        assert sentinel.connection_pool.connection_kwargs["socket_timeout"] == 0.5
        assert sentinel.connection_pool.connection_kwargs["retry"].get_retries() == 0


# --- redis+cluster:// -------------------------------------------------------------------------


def test_a_cluster_url_lists_some_nodes_and_how_to_log_in() -> None:
    parsed = parse_cluster_url(f"redis+cluster://:{QUOTED}@10.0.0.1:7000,node-b/0")

    assert parsed.nodes == (("10.0.0.1", 7000), ("node-b", 6379))
    assert parsed.connection_kwargs == {"password": PASSWORD}


@pytest.mark.parametrize(
    "url", ["redis+cluster://h:7000/1", "redis+cluster://h:7000?db=2", "redis+cluster://h/x"]
)
def test_a_cluster_url_with_another_database_than_0_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="database"):
        make_redis_client(url)


def test_a_cluster_client_connects_on_first_use() -> None:
    # RedisCluster itself would read the cluster's layout here, and fail: nothing listens.
    client = make_redis_client("redis+cluster://127.0.0.1:1,127.0.0.1:2")

    assert isinstance(client, LazyRedisCluster)


@pytest.mark.parametrize("url", ["rediss+sentinel://h/lootbox", "rediss+cluster://h:7000"])
def test_tls_to_a_sentinel_or_a_cluster_is_refused_clearly(url: str) -> None:
    with pytest.raises(ValueError, match="TLS to a Sentinel or a Redis Cluster is not supported"):
        make_redis_client(url)


def test_a_redis_url_is_a_single_server_client_that_checks_it_is_not_a_cluster_node() -> None:
    client = make_redis_client("redis://127.0.0.1:1/0")

    assert isinstance(client, StandaloneRedis) and isinstance(client, MonitoredRedis)
