"""Nothing lost, nothing doubled, under seeded chaos (issue 3): see ``tests.system.chaos``.

``.ci/run`` runs the ``fast`` profile. The full run, whose figures are in
docs/reliability.md, is ``python3 dev.py chaos [SEED]`` (``CHAOS_PROFILE=full``).
``CHAOS_REPORT=path.json`` also writes the figures to a file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_postgres_database
from tests.system.chaos import PROFILES, Chaos
from tests.system.stack import SystemStack, start_stack

pytestmark = pytest.mark.system


@pytest.fixture
def own_stack() -> Iterator[SystemStack]:
    """A stack of its own: the chaos stops its Redis, kills its workers and cuts its
    database connections, which must not reach the other system tests' stack."""
    with fresh_postgres_database("lootbox_chaos") as url, start_stack(url) as stack:
        yield stack


def test_seeded_chaos_leaves_the_books_balanced(
    own_stack: SystemStack, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = PROFILES[os.environ.get("CHAOS_PROFILE", "fast")]
    seed = int(os.environ.get("CHAOS_SEED", "1"))

    figures = Chaos(own_stack, profile, seed).run()

    report = figures.to_json()
    if os.environ.get("CHAOS_REPORT"):
        Path(os.environ["CHAOS_REPORT"]).write_text(report + "\n")
    with capsys.disabled():
        print(f"\nchaos figures ({profile.name}, seed {seed}):\n{report}")
    assert figures.problems == [], "\n".join(figures.problems[:30]) + f"\n{own_stack.log_tail()}"
    assert (figures.doubles, figures.losses, figures.pending_after_reconcile) == (0, 0, 0)
    assert figures.balance_mismatches == 0
    # The run really was chaotic: every kind of fault was injected at least once.
    assert all(figures.wallet_faults.get(mode, 0) > 0 for mode in figures.wallet_faults), (
        figures.wallet_faults
    )
    assert figures.worker_kills == profile.worker_kills
    assert figures.redis_outages == profile.redis_outages
    assert figures.connection_cuts == profile.connection_cuts
