"""The HMAC-SHA256 request envelope of the contract, section 3 (inbound) and 6 (wallet).

``canonical = "{timestamp}\\n{METHOD}\\n{path}\\n{sha256_hex(body)}"``, signature is the
lowercase hex HMAC-SHA256 of it under the secret's UTF-8 bytes. Shared by the inbound
authenticator, the wallet client, the reference wallet and the client SDK so that all
four sign exactly alike.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER_KEY_ID = "X-Key-Id"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_SIGNATURE = "X-Signature"


def canonical_string(timestamp: str, method: str, path: str, body: bytes) -> str:
    body_hash = hashlib.sha256(body).hexdigest()
    return f"{timestamp}\n{method.upper()}\n{path}\n{body_hash}"


def sign(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    message = canonical_string(timestamp, method, path, body).encode()
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_matches(
    secret: str, timestamp: str, method: str, path: str, body: bytes, signature: str
) -> bool:
    expected = sign(secret, timestamp, method, path, body)
    return hmac.compare_digest(expected.encode(), signature.encode())


def signed_headers(
    secret: str, timestamp: int, method: str, path: str, body: bytes, key_id: str | None = None
) -> dict[str, str]:
    headers = {
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: sign(secret, str(timestamp), method, path, body),
    }
    if key_id is not None:
        headers[HEADER_KEY_ID] = key_id
    return headers
