"""The HMAC-SHA256 request envelope (contract §3 and §6), checked against hashlib/hmac."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from lootbox.signing import canonical_string, sign, signature_matches, signed_headers

SECRET = "s3cr3t-ključ"  # non-ASCII: the secret is used as its UTF-8 bytes
TIMESTAMP = "1714564800"
PATH = "/api/s2s/cashout"
BODY = b'{"playerExternalId":"u_8431","inventoryItemId":88}'
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def reference_signature(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    canonical = f"{timestamp}\n{method}\n{path}\n{hashlib.sha256(body).hexdigest()}"
    return hmac.new(secret.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def test_the_canonical_string_is_timestamp_method_path_and_body_hash() -> None:
    assert canonical_string(TIMESTAMP, "POST", PATH, BODY) == (
        f"{TIMESTAMP}\nPOST\n{PATH}\n{hashlib.sha256(BODY).hexdigest()}"
    )


def test_an_empty_body_hashes_as_the_empty_string() -> None:
    assert canonical_string(TIMESTAMP, "GET", "/api/s2s/health", b"") == (
        f"{TIMESTAMP}\nGET\n/api/s2s/health\n{EMPTY_SHA256}"
    )


def test_the_signature_matches_an_independent_hmac_sha256() -> None:
    expected = reference_signature(SECRET, TIMESTAMP, "POST", PATH, BODY)
    assert sign(SECRET, TIMESTAMP, "POST", PATH, BODY) == expected
    assert len(expected) == 64
    assert expected == expected.lower()


def test_a_fixed_vector_for_an_empty_body() -> None:
    # HMAC-SHA256("secret", "0\nGET\n/\n" + sha256("")), computed once with hashlib/hmac.
    expected = "6ec68fbaff4ee94b0a66c059af5f9d109a11c1408d05b73eca6679ca066d3c12"
    assert reference_signature("secret", "0", "GET", "/", b"") == expected
    assert sign("secret", "0", "GET", "/", b"") == expected


def test_the_method_is_signed_in_upper_case() -> None:
    assert sign(SECRET, TIMESTAMP, "post", PATH, BODY) == reference_signature(
        SECRET, TIMESTAMP, "POST", PATH, BODY
    )


def test_a_correct_signature_matches() -> None:
    signature = reference_signature(SECRET, TIMESTAMP, "POST", PATH, BODY)
    assert signature_matches(SECRET, TIMESTAMP, "POST", PATH, BODY, signature)


@pytest.mark.parametrize(
    ("secret", "timestamp", "method", "path", "body"),
    [
        ("other-secret", TIMESTAMP, "POST", PATH, BODY),
        (SECRET, "1714564801", "POST", PATH, BODY),
        (SECRET, TIMESTAMP, "PUT", PATH, BODY),
        (SECRET, TIMESTAMP, "POST", "/api/s2s/cancel", BODY),
        (SECRET, TIMESTAMP, "POST", PATH + "?x=1", BODY),
        (SECRET, TIMESTAMP, "POST", PATH, BODY + b" "),
        (SECRET, TIMESTAMP, "POST", PATH, b""),
    ],
    ids=["secret", "timestamp", "method", "path", "query", "body-byte", "empty-body"],
)
def test_any_change_to_the_signed_request_is_a_mismatch(
    secret: str, timestamp: str, method: str, path: str, body: bytes
) -> None:
    signature = reference_signature(SECRET, TIMESTAMP, "POST", PATH, BODY)
    assert not signature_matches(secret, timestamp, method, path, body, signature)


@pytest.mark.parametrize(
    "signature",
    ["", "deadbeef", "0" * 64, "é" * 64],
    ids=["empty", "short", "zeros", "non-ascii"],
)
def test_a_malformed_signature_is_a_mismatch_not_an_error(signature: str) -> None:
    assert not signature_matches(SECRET, TIMESTAMP, "POST", PATH, BODY, signature)


def test_the_secret_is_used_as_its_utf8_bytes() -> None:
    signed_as_latin1 = hmac.new(
        SECRET.encode("latin-1", "replace"),
        canonical_string(TIMESTAMP, "POST", PATH, BODY).encode(),
        hashlib.sha256,
    ).hexdigest()
    assert not signature_matches(SECRET, TIMESTAMP, "POST", PATH, BODY, signed_as_latin1)


def test_signed_headers_carry_timestamp_signature_and_optional_key_id() -> None:
    inbound = signed_headers(SECRET, 1714564800, "POST", PATH, BODY, key_id="lk_1")
    assert inbound == {
        "X-Timestamp": TIMESTAMP,
        "X-Signature": reference_signature(SECRET, TIMESTAMP, "POST", PATH, BODY),
        "X-Key-Id": "lk_1",
    }
    outbound = signed_headers(SECRET, 1714564800, "POST", "/rpc", BODY)
    assert "X-Key-Id" not in outbound
