"""The onboarding CLI as an operator's engineer uses it: JSON on stdout, errors as JSON on
stderr with exit code 1, and its effect visible through the S2S API."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.e2e.conftest import CATALOG, PLAYER, WALLET_SECRET, Creds, World


def catalog_file(world: World, document: Any, name: str = "catalog.json") -> str:
    path = world.tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_operators_create_prints_slug_currency_key_id_and_secret(world: World) -> None:
    result = world.cli(
        "operators",
        "create",
        f"{world.operator.slug}-b",
        "--currency",
        "usd",
        "--wallet-url",
        world.wallet.url,
        "--wallet-secret",
        WALLET_SECRET,
        "--rate",
        "EUR=0.92",
    )
    world.slugs.append(f"{world.operator.slug}-b")

    assert result.exit_code == 0, result
    doc = result.json
    assert set(doc) == {"slug", "currency", "keyId", "secret"}
    assert doc["slug"] == f"{world.operator.slug}-b"
    assert doc["currency"] == "USD"
    assert isinstance(doc["keyId"], str) and doc["keyId"]
    assert isinstance(doc["secret"], str) and len(doc["secret"]) >= 32
    assert (
        world.client_for(Creds(doc["slug"], "USD", doc["keyId"], doc["secret"])).health().status
        == 200
    )


def test_operators_create_with_a_taken_slug_fails_with_exit_code_1(world: World) -> None:
    result = world.cli(
        "operators",
        "create",
        world.operator.slug,
        "--currency",
        "EUR",
        "--wallet-url",
        world.wallet.url,
        "--wallet-secret",
        WALLET_SECRET,
    )

    assert result.exit_code == 1
    assert result.error["code"] == "OPERATOR_EXISTS"
    assert result.stdout == ""
    assert world.api.health().status == 200  # the original operator is untouched


def test_operators_create_refuses_an_unknown_currency_and_a_non_http_wallet_url(
    world: World,
) -> None:
    bad_currency = world.cli(
        "operators", "create", "e2e-bad-cur", "--currency", "ZZZ",
        "--wallet-url", world.wallet.url, "--wallet-secret", WALLET_SECRET,
    )  # fmt: skip
    bad_url = world.cli(
        "operators", "create", "e2e-bad-url", "--currency", "EUR",
        "--wallet-url", "ftp://127.0.0.1/w", "--wallet-secret", WALLET_SECRET,
    )  # fmt: skip

    assert bad_currency.exit_code == 1
    assert bad_currency.error["code"] == "VALIDATION_ERROR"
    assert bad_url.exit_code == 1
    assert bad_url.error["code"] == "VALIDATION_ERROR"


def test_keys_create_prints_a_new_key_id_and_secret(world: World) -> None:
    result = world.cli("operators", "keys", "create", world.operator.slug)

    assert result.exit_code == 0, result
    assert set(result.json) == {"keyId", "secret"}
    assert result.json["keyId"] != world.operator.key_id


def test_keys_revoke_prints_the_revoked_key_and_an_unknown_key_fails(world: World) -> None:
    revoked = world.cli("operators", "keys", "revoke", world.operator.key_id)
    unknown = world.cli("operators", "keys", "revoke", "lk_doesnotexist")

    assert revoked.exit_code == 0
    assert revoked.json == {"keyId": world.operator.key_id, "revoked": True}
    assert unknown.exit_code == 1
    assert unknown.error["code"] == "API_KEY_NOT_FOUND"


def test_keys_create_for_an_unknown_operator_fails(world: World) -> None:
    result = world.cli("operators", "keys", "create", "e2e-nobody-here")

    assert result.exit_code == 1
    assert result.error["code"] == "OPERATOR_NOT_FOUND"


def test_operators_update_changes_rates_and_policies_and_prints_the_operator(world: World) -> None:
    result = world.cli(
        "operators", "update", world.operator.slug,
        "--rate", "USD=1.1042", "--rate", "GBP=0.85", "--no-refunds",
    )  # fmt: skip

    assert result.exit_code == 0, result
    doc = result.json
    assert doc["slug"] == world.operator.slug
    assert doc["refunds"] is False
    assert doc["cashback"] is True
    assert doc["cashbackBps"] == 8000
    assert doc["rates"] == {"GBP": "0.85", "JPY": "162.5", "KWD": "0.3312", "USD": "1.1042"}
    # The new rate is what the next cashout uses: 3.20 EUR x 1.1042 = 3.53344 -> 353.
    item = world.win_item("gold")
    reply = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"], currency="USD"
    )
    assert reply.json["item"]["cashbackMinor"] == 353
    gbp = world.api.purchase(**world.purchase_body("gold", currency="GBP"))
    assert gbp.status == 200
    assert gbp.json["round"]["betMinor"] == 425


def test_operators_update_refuses_a_bad_rate(world: World) -> None:
    for rate in ("USD=abc", "USD=-1", "USD=0", "USD"):
        result = world.cli("operators", "update", world.operator.slug, "--rate", rate)
        assert result.exit_code != 0, rate
    assert world.cli("operators", "update", "e2e-nobody", "--no-refunds").exit_code == 1


def test_catalog_import_prints_each_box_with_its_ids(world: World) -> None:
    result = world.cli("catalog", "import", world.operator.slug, catalog_file(world, CATALOG))

    assert result.exit_code == 0, result
    boxes = result.json["boxes"]
    assert [b["slug"] for b in boxes] == [b["slug"] for b in CATALOG["boxes"]]
    for box in boxes:
        assert set(box) == {"slug", "boxId", "boxVersionId"}
        assert isinstance(box["boxId"], int) and isinstance(box["boxVersionId"], int)


def test_catalog_import_shows_its_progress_on_stderr(world: World) -> None:
    many = {
        "boxes": [
            {**CATALOG["boxes"][0], "slug": f"bulk-{i}", "name": f"Bulk {i}"} for i in range(30)
        ]
    }

    result = world.cli("catalog", "import", world.operator.slug, catalog_file(world, many))

    assert result.exit_code == 0, result
    assert len(result.json["boxes"]) == 30  # stdout stays one JSON document
    assert result.stderr.strip().splitlines()[-1] == "catalog: 30/30 boxes published"


def test_reimporting_an_unchanged_catalog_keeps_every_box_version(world: World) -> None:
    again = world.import_catalog(CATALOG)

    assert again == world.boxes
    assert world.api.purchase(**world.purchase_body("gold")).status == 200


def test_reimporting_a_changed_box_gives_it_a_new_version_and_leaves_the_others(
    world: World,
) -> None:
    changed = json.loads(json.dumps(CATALOG))
    changed["boxes"][0]["prizes"][0]["valueMinor"] = 450

    result = world.cli("catalog", "import", world.operator.slug, catalog_file(world, changed))

    assert result.exit_code == 0
    by_slug = {b["slug"]: b for b in result.json["boxes"]}
    assert by_slug["gold"]["boxVersionId"] != world.boxes["gold"]
    assert by_slug["silver"]["boxVersionId"] == world.boxes["silver"]
    old = world.api.purchase(**world.purchase_body("gold"))
    assert old.code == "BOX_NOT_PLAYABLE"
    new_ids = {slug: b["boxVersionId"] for slug, b in by_slug.items()}
    new = world.api.purchase(**world.purchase_body("gold", box_ids=new_ids))
    assert new.json["wonItems"][0]["valueMinor"] == 450


def test_a_catalog_whose_odds_do_not_sum_to_one_is_refused_with_a_json_error(
    world: World,
) -> None:
    bad = {
        "boxes": [
            {
                "slug": "gold",
                "name": "Gold Box",
                "priceMinor": 500,
                "prizes": [
                    {"name": "A", "valueMinor": 1, "odds": 0.6},
                    {"name": "B", "valueMinor": 2, "odds": 0.3},
                ],
            }
        ]
    }

    result = world.cli("catalog", "import", world.operator.slug, catalog_file(world, bad))

    assert result.exit_code == 1
    assert result.error["code"] == "INVALID_CATALOG"
    assert result.error["message"]
    assert result.stdout == ""
    # Nothing was published: the old version is still the playable one.
    assert world.api.purchase(**world.purchase_body("gold")).status == 200


def test_a_catalog_with_odds_written_as_decimals_that_sum_to_exactly_one_is_accepted(
    world: World,
) -> None:
    odds = {
        "boxes": [
            {
                "slug": "tenths",
                "name": "Tenths Box",
                "priceMinor": 100,
                "prizes": [{"name": f"P{i}", "valueMinor": i, "odds": 0.1} for i in range(10)],
            }
        ]
    }

    result = world.cli("catalog", "import", world.operator.slug, catalog_file(world, odds))

    assert result.exit_code == 0, result


def test_catalog_import_refuses_other_broken_documents(world: World) -> None:
    broken: list[Any] = [
        {"boxes": "nope"},
        {
            "boxes": [
                {
                    "slug": "x",
                    "name": "X",
                    "priceMinor": 0,
                    "prizes": [{"name": "a", "valueMinor": 1, "odds": 1}],
                }
            ]
        },
        {"boxes": [{"slug": "x", "name": "X", "priceMinor": 10, "prizes": []}]},
        {
            "boxes": [
                {
                    "slug": "x",
                    "name": "X",
                    "priceMinor": 10,
                    "prizes": [{"name": "a", "valueMinor": -1, "odds": 1}],
                }
            ]
        },
    ]
    for n, document in enumerate(broken):
        result = world.cli(
            "catalog", "import", world.operator.slug, catalog_file(world, document, f"b{n}.json")
        )
        assert result.exit_code == 1, document
        assert result.error["code"] == "INVALID_CATALOG", document
    not_json = world.cli(
        "catalog", "import", world.operator.slug, catalog_file(world, "{nope", "nope.json")
    )
    assert not_json.exit_code != 0


def test_catalog_import_for_an_unknown_operator_fails(world: World) -> None:
    result = world.cli("catalog", "import", "e2e-nobody", catalog_file(world, CATALOG))

    assert result.exit_code == 1
    assert result.error["code"] == "OPERATOR_NOT_FOUND"


def test_the_secret_printed_by_the_cli_is_the_only_way_in(world: World) -> None:
    assert re.fullmatch(r"lk_[0-9a-f]{16}", world.operator.key_id)
    assert (
        world.client_for(
            Creds(world.operator.slug, "EUR", world.operator.key_id, world.operator.secret + "x")
        )
        .health()
        .code
        == "INVALID_SIGNATURE"
    )
