"""Idempotency: the Redis fast path, request fingerprints and (elsewhere) the database
fallback. Redis only accelerates; the database is the guarantee (contract section 7)."""
