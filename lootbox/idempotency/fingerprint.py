"""Request fingerprints: what "the same request" means for an idempotency key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def fingerprint(endpoint: str, normalized_request: Mapping[str, Any]) -> str:
    """Return ``"sha256:<hex>"`` of the canonical JSON of the endpoint and the request.

    The caller passes the request AFTER defaults are applied (so an omitted default and
    the same value sent explicitly fingerprint alike) and WITHOUT the idempotency key
    itself (the key is what the fingerprint is stored under, not part of the request).

    Canonical JSON: keys sorted, no insignificant whitespace, non-ASCII kept as UTF-8.
    Types count: ``1``, ``"1"``, ``1.0`` and ``true`` all differ. Values must be plain JSON
    types (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``); anything
    else (``Decimal``, ``datetime``) raises ``TypeError``: normalize it first, so the
    fingerprint never depends on an implicit ``str()``.
    """
    canonical = json.dumps(
        {"endpoint": endpoint, "request": normalized_request},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    # surrogatepass: a JSON body may legally carry a lone surrogate ("\ud800"); it must
    # still fingerprint deterministically instead of failing the request.
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"
