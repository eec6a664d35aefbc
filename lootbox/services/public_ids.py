"""Opaque public ids: rounds are ``r_<ULID>`` (sortable, unguessable enough to share)."""

from __future__ import annotations

from ulid import ULID


def new_round_public_id() -> str:
    return f"r_{ULID()}"
