"""The OpenAPI document (``/openapi.json``) and the docs page (``/docs``), as a reader of
them would check: every operation explained, every field described with an example, every
error answer listing the exact codes it can carry, the signature on every S2S operation,
examples that the schemas accept, and a docs page that needs no internet.

The document is generated from the schemas that validate; schemathesis then holds the
running service to it (``tests/system/test_openapi_contract.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import jsonschema_rs
import pytest
from flask import Flask
from werkzeug.test import TestResponse

from app import create_app
from lootbox.api import openapi
from lootbox.api.errors import HTTP_CODES
from lootbox.domain import errors as domain_errors
from tests.e2e.conftest import PLAYER, World

# What each operation of the S2S blueprint and the probes can answer, per status, read off
# the services (lootbox/services/*.py), the guard, the authenticator and the error mapping.
SIGNED = {
    "401": {"MISSING_HEADERS", "INVALID_SIGNATURE", "TIMESTAMP_SKEW"},
    "413": {"PAYLOAD_TOO_LARGE"},
    "503": {"SERVICE_UNAVAILABLE"},
}
POSTED = {**SIGNED, "400": {"VALIDATION_ERROR"}, "415": {"UNSUPPORTED_MEDIA_TYPE"}}
WALLET = "<wallet's code>"
EXPECTED_ERRORS: dict[tuple[str, str], dict[str, set[str]]] = {
    ("/api/s2s/cashout", "post"): {
        **POSTED,
        "403": {"PLAYER_BLOCKED"},
        "404": {"INVENTORY_ITEM_NOT_FOUND"},
        "409": {"IDEMPOTENCY_KEY_IN_USE"},
        "422": {"CASHBACK_NOT_AVAILABLE", "IDEMPOTENCY_KEY_REUSED", WALLET},
        "503": {"SERVICE_UNAVAILABLE", "WALLET_UNAVAILABLE"},
    },
    ("/api/s2s/cancel", "post"): {
        **POSTED,
        "403": {"PLAYER_BLOCKED", "REFUND_NOT_ALLOWED"},
        "404": {"ROUND_NOT_FOUND"},
        "409": {"IDEMPOTENCY_KEY_IN_USE", "ROUND_NOT_REFUNDABLE"},
        "422": {"IDEMPOTENCY_KEY_REUSED", WALLET},
        "503": {"SERVICE_UNAVAILABLE", "WALLET_UNAVAILABLE"},
    },
    ("/api/s2s/purchase", "post"): {
        **POSTED,
        "403": {"PLAYER_BLOCKED"},
        "404": {"UNKNOWN_BOX"},
        "409": {"BOX_NOT_PLAYABLE", "IDEMPOTENCY_KEY_IN_USE"},
        "422": {"CURRENCY_NOT_SUPPORTED", "IDEMPOTENCY_KEY_REUSED", WALLET},
        "503": {"SERVICE_UNAVAILABLE", "WALLET_UNAVAILABLE"},
    },
    ("/api/s2s/open", "post"): {
        **POSTED,
        "404": {"ROUND_NOT_FOUND"},
        "409": {"IDEMPOTENCY_KEY_IN_USE", "ROUND_NOT_HELD"},
        "422": {"IDEMPOTENCY_KEY_REUSED"},
        "503": {"SERVICE_UNAVAILABLE", "WALLET_UNAVAILABLE"},
    },
    ("/api/s2s/health", "get"): SIGNED,
    ("/api/s2s/inventory", "get"): {**SIGNED, "400": {"VALIDATION_ERROR"}},
    ("/api/s2s/history", "get"): {**SIGNED, "400": {"VALIDATION_ERROR"}},
    ("/healthz", "get"): {},
    ("/readyz", "get"): {},  # its 503 is the readiness body, not the error envelope
}

# Routes that are not the API: the documentation itself, and the platform's Prometheus
# scrape (deliberately kept out of the document: tests/e2e/test_metrics.py).
NOT_API = {
    "/openapi.json",
    "/docs",
    "/docs/assets/<path:filename>",
    "/static/<path:filename>",
    "/metrics",
}


def _every_code_the_service_has() -> set[str]:
    codes = {openapi.WALLET_REFUSAL, "PLAYER_BLOCKED", *HTTP_CODES.values()}
    pending: list[type[domain_errors.LootboxError]] = [domain_errors.LootboxError]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending.extend(cls.__subclasses__())
    return codes


# --- the document --------------------------------------------------------------------------


def _app() -> Flask:
    # The document needs no database or Redis: nothing connects until a request needs it.
    return create_app(
        {
            "database_url": "postgresql://postgres@127.0.0.1:1/unused",
            "redis_url": "redis://127.0.0.1:1/0",
            "env": "test",
        },
    )


@pytest.fixture(scope="module")
def app() -> Flask:
    return _app()


@pytest.fixture(scope="module")
def document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return dict(response.get_json())


def _operations_at_collection() -> list[tuple[str, str]]:
    """Every operation the document has, known before the tests run (to parametrize)."""
    app = _app()
    doc = app.test_client().get("/openapi.json").get_json()
    app.extensions["lootbox"].engine.dispose()
    return [
        (path, method)
        for path, item in doc["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _param(path: str, method: str) -> Any:
    return pytest.param(path, method, id=f"{method.upper()} {path}")


OPERATIONS = [_param(path, method) for path, method in _operations_at_collection()]


def operations_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every operation object; a path item also holds its path parameters (``parameters``)."""
    return [
        operation
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def walk_properties(
    document: dict[str, Any], schema: Any, where: str, seen: set[int] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(dotted name, property schema)`` of every property reachable from ``schema``."""
    seen = set() if seen is None else seen
    schema = resolve(document, schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen.add(id(schema))
    for keyword in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(keyword, []):
            yield from walk_properties(document, sub, where, seen)
    if "items" in schema:
        yield from walk_properties(document, schema["items"], f"{where}[]", seen)
    for name, prop in schema.get("properties", {}).items():
        yield f"{where}.{name}", prop
        yield from walk_properties(document, prop, f"{where}.{name}", seen)


def is_scalar(document: dict[str, Any], prop: dict[str, Any]) -> bool:
    """A leaf field: not an object, not a list of objects."""
    target = resolve(document, prop)
    if "allOf" in target or "anyOf" in target or target.get("type") == "object":
        return False
    if target.get("type") == "array":
        return is_scalar(document, target["items"])
    return True


def validator_for(document: dict[str, Any], schema: Any) -> Any:
    """A JSON Schema validator of ``schema`` (OpenAPI 3.0: ``nullable`` made explicit)."""

    def convert(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: convert(v) for k, v in node.items() if k not in {"example", "examples"}}
            if node.pop("nullable", False):
                return {"anyOf": [node, {"type": "null"}]}
            return node
        if isinstance(node, list):
            return [convert(v) for v in node]
        return node

    root = {**convert(schema), "components": convert(document["components"])}
    return jsonschema_rs.Draft4Validator(root)


def error_codes(response: dict[str, Any]) -> set[str]:
    """The codes a documented error answer can carry, read off its schema: an ``enum``, or
    ``anyOf`` an ``enum`` and the wallet's open-ended ``pattern``."""
    schema = response["content"]["application/json"]["schema"]
    assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}
    code = schema["allOf"][1]["properties"]["error"]["properties"]["code"]
    codes = set(code.get("enum", []))
    for branch in code.get("anyOf", []):
        codes |= set(branch.get("enum", []))
        if "pattern" in branch:
            codes.add(openapi.WALLET_REFUSAL)
    return codes


def examples_of(media: dict[str, Any]) -> list[tuple[str, Any]]:
    found = [(name, ex["value"]) for name, ex in media.get("examples", {}).items()]
    if "example" in media:
        found.append(("example", media["example"]))
    return found


# --- the document as a whole ---------------------------------------------------------------


def test_document_explains_signing_errors_and_idempotency(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    info = document["info"]
    assert info["title"] and info["version"]
    for must in (
        "X-Key-Id",
        "X-Timestamp",
        "X-Signature",
        r"{timestamp}\n{METHOD}\n{path}\n{bodyHash}",
        '{"error": {"code"',
        "IDEMPOTENCY_KEY_REUSED",
        "Idempotent-Replayed",
        "Retry-After",
        "X-Request-Id",
        "minor units",
    ):
        assert must in info["description"].replace("\n", " "), must
    assert document["servers"] == [{"url": "/", "description": "This deployment"}]


def test_security_schemes_are_the_three_signing_headers(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert {name: (s["type"], s["in"], s["name"]) for name, s in schemes.items()} == {
        "X-Key-Id": ("apiKey", "header", "X-Key-Id"),
        "X-Timestamp": ("apiKey", "header", "X-Timestamp"),
        "X-Signature": ("apiKey", "header", "X-Signature"),
    }
    assert "HMAC-SHA256" in schemes["X-Signature"]["description"]
    assert r"{timestamp}\n{METHOD}\n{path}\n{bodyHash}" in schemes["X-Signature"]["description"]


def test_every_route_of_the_app_is_documented(app: Flask, document: dict[str, Any]) -> None:
    documented = {
        (re.sub(r"\{(\w+)\}", r"<\1>", path), method.upper())
        for path, item in document["paths"].items()
        for method in item
    }
    missing = sorted(
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule not in NOT_API
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
        if (rule.rule, method) not in documented
    )
    assert not missing, f"routes missing from /openapi.json: {missing}"


def test_our_operations_are_all_there(document: dict[str, Any]) -> None:
    present = {(path, method) for path, item in document["paths"].items() for method in item}
    assert set(EXPECTED_ERRORS) <= present


# --- each operation --------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_operation_is_explained(document: dict[str, Any], path: str, method: str) -> None:
    operation = document["paths"][path][method]
    assert operation.get("summary"), "a one-line summary (the docstring's first line)"
    assert len(operation.get("description", "")) > 40, "a description (the docstring's body)"
    assert operation.get("operationId"), "an operationId"
    ids = [op.get("operationId") for op in operations_of(document)]
    assert ids.count(operation["operationId"]) == 1


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_every_field_has_a_description_and_an_example(
    document: dict[str, Any], path: str, method: str
) -> None:
    operation = document["paths"][path][method]
    problems = []
    for parameter in operation.get("parameters", []):
        parameter = resolve(document, parameter)
        name = f"{parameter['in']}:{parameter['name']}"
        if not parameter.get("description"):
            problems.append(f"{name}: no description")
        if "example" not in parameter and "example" not in parameter.get("schema", {}):
            problems.append(f"{name}: no example")
    schemas = []
    if "requestBody" in operation:
        media = operation["requestBody"]["content"]["application/json"]
        assert operation["requestBody"].get("description"), "the body is described"
        assert examples_of(media), "a whole request example"
        schemas.append(("request", media["schema"]))
    for status, response in operation["responses"].items():
        for media in response.get("content", {}).values():
            schemas.append((f"response {status}", media["schema"]))
    for where, schema in schemas:
        for name, prop in walk_properties(document, schema, where):
            if not prop.get("description"):
                problems.append(f"{name}: no description")
            if is_scalar(document, prop) and "example" not in resolve(document, prop):
                problems.append(f"{name}: no example")
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_success_answer_has_a_schema_and_an_example(
    document: dict[str, Any], path: str, method: str
) -> None:
    ok = document["paths"][path][method]["responses"]["200"]
    assert ok.get("description")
    media = ok["content"]["application/json"]
    assert "schema" in media
    assert examples_of(media), "an example of the 200 body"


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_every_example_is_accepted_by_its_schema(
    document: dict[str, Any], path: str, method: str
) -> None:
    operation = document["paths"][path][method]
    media_types = [("request", operation.get("requestBody", {}).get("content", {}))] + [
        (f"response {status}", response.get("content", {}))
        for status, response in operation["responses"].items()
    ]
    checked = 0
    for where, content in media_types:
        for media in content.values():
            validator = validator_for(document, media["schema"])
            for name, value in examples_of(media):
                errors = [str(error) for error in validator.iter_errors(value)]
                assert not errors, f"{where} example {name!r}: {errors}"
                checked += 1
    assert checked


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_error_answers_list_their_codes(document: dict[str, Any], path: str, method: str) -> None:
    """Each 4xx/5xx: the error envelope, narrowed to its codes, each code explained in the
    description and shown in an example; every code is one the service really has."""
    known = _every_code_the_service_has()
    operation = document["paths"][path][method]
    for status, response in operation["responses"].items():
        if not status.startswith(("4", "5")) or (path, status) == ("/readyz", "503"):
            continue
        media = response["content"]["application/json"]
        codes = error_codes(response)
        assert codes, f"{status}: no codes"
        assert codes <= known, f"{status}: codes the service does not have: {codes - known}"
        for code in codes:
            assert f"`{code}`" in response["description"], f"{status} {code}: not explained"
        example_codes = {ex["value"]["error"]["code"] for ex in media["examples"].values()}
        for code in codes - {openapi.WALLET_REFUSAL}:
            assert code in example_codes, f"{status} {code}: no example"
        assert "X-Request-Id" in response["headers"]


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_every_answer_documents_x_request_id(
    document: dict[str, Any], path: str, method: str
) -> None:
    for status, response in document["paths"][path][method]["responses"].items():
        header = response.get("headers", {}).get("X-Request-Id")
        assert header and header["required"], status


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_s2s_operations_are_signed_and_probes_are_not(
    document: dict[str, Any], path: str, method: str
) -> None:
    operation = document["paths"][path][method]
    if path.startswith("/api/s2s/"):
        assert operation["security"] == [{"X-Key-Id": [], "X-Timestamp": [], "X-Signature": []}]
        codes = {
            status: error_codes(operation["responses"][status]) for status in ("401", "413", "503")
        }
        assert codes["401"] == SIGNED["401"]
        assert codes["413"] == SIGNED["413"]
        assert "SERVICE_UNAVAILABLE" in codes["503"]
        if method == "post":
            assert "415" in operation["responses"]
        queried = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
        if method == "post" or queried:
            assert "400" in operation["responses"], "its input is validated: 400"
    else:
        assert operation.get("security") == [], "probes are unauthenticated"


@pytest.mark.parametrize(
    ("path", "method"), [pytest.param(p, m, id=f"{m.upper()} {p}") for p, m in EXPECTED_ERRORS]
)
def test_exact_error_codes_per_status(document: dict[str, Any], path: str, method: str) -> None:
    documented: dict[str, set[str]] = {}
    for status, response in document["paths"][path][method]["responses"].items():
        if not status.startswith(("4", "5")) or (path, status) == ("/readyz", "503"):
            continue
        documented[status] = error_codes(response)
    assert documented == EXPECTED_ERRORS[(path, method)]


def test_retry_after_is_documented_where_the_key_can_be_in_use(
    document: dict[str, Any],
) -> None:
    for path, method in [(p, m) for p, m in EXPECTED_ERRORS if m == "post"]:
        conflict = document["paths"][path][method]["responses"]["409"]
        retry_after = conflict["headers"]["Retry-After"]
        assert retry_after["schema"]["type"] == "integer"
        # Required only where every 409 is IDEMPOTENCY_KEY_IN_USE.
        only_in_use = EXPECTED_ERRORS[(path, method)]["409"] == {"IDEMPOTENCY_KEY_IN_USE"}
        assert retry_after["required"] is only_in_use, path
        replayed = document["paths"][path][method]["responses"]["200"]["headers"]
        assert replayed["Idempotent-Replayed"]["schema"]["enum"] == ["true"]


def test_purchase_links_its_ids_to_the_next_calls(document: dict[str, Any]) -> None:
    links = document["paths"]["/api/s2s/purchase"]["post"]["responses"]["200"]["links"]
    assert {link["operationId"] for link in links.values()} == {"cashout", "open", "cancel"}
    ids = {op.get("operationId") for op in operations_of(document)}
    assert {link["operationId"] for link in links.values()} <= ids


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_patterns_are_json_schema_patterns(
    document: dict[str, Any], path: str, method: str
) -> None:
    """Python's ``\\Z`` means nothing to a JSON Schema (ECMA-262) validator, and its
    surrogate escapes split every non-BMP character there: ``schemas.fields.spec_pattern``."""
    operation = document["paths"][path][method]
    schemas = [resolve(document, p).get("schema", {}) for p in operation.get("parameters", [])]
    schemas += [
        media["schema"]
        for holder in [operation.get("requestBody", {}), *operation["responses"].values()]
        for media in holder.get("content", {}).values()
    ]
    patterns = [schema["pattern"] for schema in schemas if "pattern" in schema]
    for schema in schemas:
        patterns += [
            resolve(document, prop)["pattern"]
            for _, prop in walk_properties(document, schema, "")
            if "pattern" in resolve(document, prop)
        ]
    bad = [p for p in patterns if "\\Z" in p or "\\ud8" in p]
    assert not bad, bad


def _error_classes() -> list[type[domain_errors.LootboxError]]:
    found, pending = [], [domain_errors.LootboxError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_every_code_is_documented_by_the_class_that_answers_it(
    cls: type[domain_errors.LootboxError],
) -> None:
    # A class with a code of its own describes it itself: no code borrows a title, a
    # "when" or a status meant for another.
    parent = cls.__mro__[1]
    if cls is domain_errors.LootboxError or cls.code != getattr(parent, "code", None):
        assert "title" in vars(cls) and "when" in vars(cls), cls
    assert cls.status in {400, 401, 403, 404, 409, 413, 415, 422, 500, 503}


# --- what the server really answers is what is documented ---------------------------------


def _documented_schema(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    response = document["paths"][path][method]["responses"].get(str(status))
    assert response is not None, f"{method.upper()} {path} answered an undocumented {status}"
    return validator_for(document, response["content"]["application/json"]["schema"])


def test_real_answers_match_their_documented_schemas(
    world: World, document: dict[str, Any]
) -> None:
    """A few answers of every kind, from the real app on both stacks, against the document
    (schemathesis does this at scale against the live server)."""
    api = world.api
    item = world.win_item()
    held = world.hold_round()
    answers = [
        (
            "/api/s2s/cashout",
            api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"]),
        ),
        (
            "/api/s2s/cashout",
            api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"]),
        ),
        ("/api/s2s/cashout", api.cashout(playerExternalId=PLAYER, inventoryItemId=10**9)),
        ("/api/s2s/cashout", api.cashout(playerExternalId=PLAYER, inventoryItemId="1")),
        (
            "/api/s2s/cashout",
            api.post("/api/s2s/cashout", raw=b"{", content_type="application/json"),
        ),
        ("/api/s2s/cashout", api.post("/api/s2s/cashout", {"x": 1}, content_type="text/plain")),
        ("/api/s2s/cashout", api.post("/api/s2s/cashout", {}, signed=False)),
        ("/api/s2s/cancel", api.cancel(playerExternalId=PLAYER, roundPublicId=held)),
        ("/api/s2s/open", api.open(playerExternalId=PLAYER, roundPublicId=held)),
        ("/api/s2s/purchase", api.purchase(**world.purchase_body(mode="prepay"))),
        ("/api/s2s/purchase", api.purchase(**world.purchase_body(currency="GBP"))),
        ("/api/s2s/health", api.health()),
        ("/api/s2s/cashout", api.post("/api/s2s/cashout", raw=b" " * (1024 * 1024 + 1))),
    ]
    seen = set()
    for path, reply in answers:
        validator = _documented_schema(
            document, path, "post" if "health" not in path else "get", reply.status
        )
        errors = [str(error) for error in validator.iter_errors(reply.json)]
        assert not errors, (path, reply.status, reply.json, errors)
        assert reply.headers.get("X-Request-Id")
        seen.add(reply.status)
    assert seen == {200, 400, 401, 404, 409, 413, 415, 422}


# --- /docs -------------------------------------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)


def _get(app: Flask, url: str) -> TestResponse:
    return app.test_client().get(url)


def test_docs_page_is_served_with_its_assets_and_no_external_url(app: Flask) -> None:
    page = _get(app, "/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html, "no CDN, no external URL"
    assert '"/openapi.json"' in html
    assert '"validatorUrl": null' in html, "no call to the public online validator"
    parser = _Assets()
    parser.feed(html)
    assert {u.rsplit("/", 1)[-1] for u in parser.urls} >= {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
    }
    for url in parser.urls:
        assert url.startswith("/docs/assets/"), url
        asset = _get(app, url)
        assert asset.status_code == 200, url
        assert len(asset.get_data()) > 1000, url
        if url.endswith(".css"):
            assert asset.mimetype == "text/css"
            css = asset.get_data(as_text=True)
            external = [u for u in re.findall(r"url\(([^)]*)\)", css) if "//" in u]
            assert all(u.strip("'\"").startswith("data:") for u in external), external
        if url.endswith(".js"):
            assert "javascript" in asset.mimetype


def test_docs_assets_do_not_serve_outside_the_bundle(app: Flask) -> None:
    assert _get(app, "/docs/assets/../../app.py").status_code == 404
    assert _get(app, "/docs/assets/nope.js").status_code == 404
