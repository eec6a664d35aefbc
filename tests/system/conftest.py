"""The running system, shared by every system test of the session (it takes seconds to
start): see ``tests.system.stack``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system.stack import SystemStack, start_stack


@pytest.fixture(scope="session")
def stack(postgres_database: str) -> Iterator[SystemStack]:
    with start_stack(postgres_database) as running:
        yield running


@pytest.fixture
def system(stack: SystemStack) -> Iterator[SystemStack]:
    """The stack with no wallet faults before and after the test; on failure, the logs."""
    stack.clear_faults()
    yield stack
    stack.clear_faults()
    if stack.gunicorn.poll() is not None:
        pytest.fail(f"gunicorn exited with {stack.gunicorn.returncode}:\n{stack.log_tail()}")
