"""Catalog documents: validation, and publishing boxes as immutable versions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from lootbox.domain.errors import InvalidCatalog, OperatorNotFound
from lootbox.domain.records import BoxSpec, PrizeSpec, PrizeType
from lootbox.services.catalog import content_hash, import_catalog, parse_catalog
from tests.fakes import ServiceHarness, box_doc, prize_doc


def catalog(*boxes: dict[str, Any]) -> dict[str, Any]:
    return {"boxes": list(boxes)}


def two_prizes(first: Any, second: Any) -> list[dict[str, Any]]:
    return [prize_doc("Hat", 100, odds=first), prize_doc("Scarf", 400, odds=second)]


# --- parsing ---------------------------------------------------------------------------------


def test_a_valid_document_parses_into_box_specs_with_defaults() -> None:
    specs = parse_catalog(
        catalog(
            {
                "slug": "gold",
                "name": "Gold box",
                "priceMinor": 500,
                "prizes": [
                    {"name": "Ring", "valueMinor": 3200, "odds": "0.25", "cashbackBps": 1100},
                    {"name": "Coin", "valueMinor": 0, "odds": "0.75"},
                ],
            },
            box_doc("silver", refundable=False, cashbackEnabled=False, cashbackBps=0),
        )
    )
    assert specs == [
        BoxSpec(
            slug="gold",
            name="Gold box",
            price_minor=500,
            refundable=True,
            cashback_enabled=True,
            cashback_bps=None,
            prizes=(
                PrizeSpec("Ring", 3200, Decimal("0.25"), 1100),
                PrizeSpec("Coin", 0, Decimal("0.75"), None),
            ),
        ),
        BoxSpec(
            slug="silver",
            name="Silver",
            price_minor=500,
            refundable=False,
            cashback_enabled=False,
            cashback_bps=0,
            prizes=(PrizeSpec("Ring", 3200, Decimal("1"), None),),
        ),
    ]


@pytest.mark.parametrize(
    "odds",
    [
        (Decimal("0.3"), Decimal("0.7")),
        (0.3, 0.7),
        ("0.3", "0.7"),
    ],
    ids=["decimal", "float", "string"],
)
def test_odds_summing_to_one_are_accepted_as_exact_decimals(odds: tuple[Any, Any]) -> None:
    (spec,) = parse_catalog(catalog(box_doc("b", prizes=two_prizes(*odds))))
    assert [p.odds for p in spec.prizes] == [Decimal("0.3"), Decimal("0.7")]
    assert all(isinstance(p.odds, Decimal) for p in spec.prizes)


def test_float_odds_that_only_sum_to_one_in_binary_are_read_as_written() -> None:
    # 0.1 + 0.2 + 0.7 is 1.0000000000000002 in floats, exactly 1 as written.
    prizes = [prize_doc(n, 10, odds=o) for n, o in (("a", 0.1), ("b", 0.2), ("c", 0.7))]
    (spec,) = parse_catalog(catalog(box_doc("b", prizes=prizes)))
    assert sum(p.odds for p in spec.prizes) == 1


@pytest.mark.parametrize(
    "odds",
    [
        (Decimal("0.3"), Decimal("0.6")),
        (0.3, 0.6),
        ("0.5", "0.5000001"),
        (0.3333333, 0.6666666),
        (1, 0),
        ("1.5", "-0.5"),
    ],
    ids=["decimal-short", "float-short", "string-over", "float-thirds", "zero", "negative"],
)
def test_odds_not_summing_to_one_or_not_positive_are_rejected(odds: tuple[Any, Any]) -> None:
    with pytest.raises(InvalidCatalog, match=r"boxes\[0\]"):
        parse_catalog(catalog(box_doc("b", prizes=two_prizes(*odds))))


@pytest.mark.parametrize("odds", [True, None, "abc", [0.5], {"v": 1}, "NaN"])
def test_odds_that_are_not_numbers_are_rejected(odds: Any) -> None:
    with pytest.raises(InvalidCatalog, match=r"boxes\[0\]"):
        parse_catalog(catalog(box_doc("b", prizes=[prize_doc("x", 1, odds=odds)])))


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("slug", "boxes[0].slug"),
        ("name", "boxes[0].name"),
        ("priceMinor", "boxes[0].priceMinor"),
        ("prizes", "boxes[0].prizes"),
    ],
)
def test_a_missing_box_field_is_named_with_its_path(field: str, path: str) -> None:
    box = box_doc("gold")
    del box[field]
    with pytest.raises(InvalidCatalog) as error:
        parse_catalog(catalog(box))
    assert path in error.value.message


@pytest.mark.parametrize(
    ("field", "path"),
    [("name", "boxes[1].prizes[0].name"), ("valueMinor", "boxes[1].prizes[0].valueMinor")],
)
def test_a_missing_prize_field_is_named_with_its_path(field: str, path: str) -> None:
    prize = prize_doc("Ring", 3200)
    del prize[field]
    with pytest.raises(InvalidCatalog) as error:
        parse_catalog(catalog(box_doc("ok"), box_doc("bad", prizes=[prize])))
    assert path in error.value.message


@pytest.mark.parametrize(
    "change",
    [
        {"priceMinor": "500"},
        {"priceMinor": 0},
        {"priceMinor": True},
        {"priceMinor": 5.0},
        {"name": "   "},
        {"slug": "x" * 65},
        {"refundable": "yes"},
        {"cashbackEnabled": 1},
        {"cashbackBps": -1},
        {"prizes": []},
        {"prizes": "ring"},
        {"prizes": [prize_doc("Ring", -1)]},
        {"prizes": ["ring"]},
    ],
    ids=lambda change: next(iter(change)) + "=" + repr(next(iter(change.values())))[:12],
)
def test_wrong_types_or_ranges_are_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidCatalog):
        parse_catalog(catalog({**box_doc("gold"), **change}))


def test_duplicate_slugs_are_rejected() -> None:
    with pytest.raises(InvalidCatalog, match="appears twice"):
        parse_catalog(catalog(box_doc("gold"), box_doc("silver"), box_doc("gold")))


@pytest.mark.parametrize("document", [None, [], {}, {"boxes": {}}, {"boxes": ["gold"]}])
def test_a_document_of_the_wrong_shape_is_rejected(document: Any) -> None:
    with pytest.raises(InvalidCatalog):
        parse_catalog(document)


def test_an_empty_box_list_is_a_valid_document() -> None:
    assert parse_catalog({"boxes": []}) == []


# --- prize type, image and shippability; box activity and presentation -------------------------


def one_prize(**fields: Any) -> PrizeSpec:
    (spec,) = parse_catalog(catalog(box_doc("b", prizes=[{**prize_doc("Ring", 100), **fields}])))
    (prize,) = spec.prizes
    return prize


def test_a_prize_is_digital_without_image_and_not_shippable_by_default() -> None:
    prize = one_prize()
    assert (prize.type, prize.image_url, prize.shippable) == (PrizeType.DIGITAL, None, False)


@pytest.mark.parametrize(
    ("fields", "shippable"),
    [
        ({"type": "physical"}, True),
        ({"type": "physical", "shippable": False}, False),
        ({"type": "digital"}, False),
        ({"type": "bonus", "shippable": True}, True),
    ],
)
def test_a_prize_ships_if_physical_unless_the_catalog_says(
    fields: dict[str, Any], shippable: bool
) -> None:
    prize = one_prize(**fields)
    assert (prize.type, prize.shippable) == (PrizeType(fields["type"]), shippable)


@pytest.mark.parametrize("prize_type", ["Physical", "cash", "", None, 1])
def test_an_unknown_prize_type_is_rejected(prize_type: Any) -> None:
    with pytest.raises(InvalidCatalog, match=r"prizes\[0\]\.type must be one of"):
        one_prize(type=prize_type)


@pytest.mark.parametrize("shippable", ["yes", 1, None])
def test_shippable_must_be_a_boolean(shippable: Any) -> None:
    with pytest.raises(InvalidCatalog, match=r"shippable"):
        one_prize(shippable=shippable)


@pytest.mark.parametrize(
    "url", ["https://cdn.example/sword.png", "http://cdn.example:8080/a/b.png?v=2#x", None]
)
def test_an_image_url_is_a_web_address_or_null(url: str | None) -> None:
    assert one_prize(imageUrl=url).image_url == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "ftp://cdn.example/sword.png",
        "/images/sword.png",
        "https://",
        "https://cdn.example/a b.png",
        "https://cdn.example/a\nb.png",
        "https://[::1",
        "https://cdn.example/" + "x" * 2048,
        "",
        42,
        {"url": "https://cdn.example/sword.png"},
    ],
)
def test_an_image_url_that_is_not_a_plain_web_address_is_rejected(url: Any) -> None:
    with pytest.raises(InvalidCatalog, match=r"prizes\[0\]\.imageUrl"):
        one_prize(imageUrl=url)


def test_a_box_is_active_without_image_or_attributes_by_default() -> None:
    (spec,) = parse_catalog(catalog(box_doc("b")))
    assert (spec.is_active, spec.image, spec.custom_attributes) == (True, None, {})


def test_box_activity_image_and_attributes_are_read_as_given() -> None:
    image = {"url": "https://cdn.example/b.png", "alt": "B\u00e4r", "size": [512, 512]}
    attributes = {"tier": "gold", "weight": Decimal("1.5"), "rank": Decimal("3"), "new": True}
    (spec,) = parse_catalog(
        catalog(box_doc("b", isActive=False, image=image, customAttributes=attributes))
    )
    assert spec.is_active is False
    assert spec.image == image
    # The CLI reads numbers as Decimal; they are stored as plain JSON numbers.
    assert spec.custom_attributes == {"tier": "gold", "weight": 1.5, "rank": 3, "new": True}


@pytest.mark.parametrize(
    "change",
    [
        {"isActive": "false"},
        {"isActive": None},
        {"image": "https://cdn.example/b.png"},
        {"image": [1]},
        {"customAttributes": []},
        {"customAttributes": "x"},
        {"customAttributes": {"nan": float("nan")}},
        {"customAttributes": {"nan": Decimal("NaN")}},
        {"customAttributes": {"big": "x" * 16 * 1024}},
        {"image": {"thing": object()}},
    ],
    ids=lambda change: next(iter(change)) + "=" + repr(next(iter(change.values())))[:12],
)
def test_wrong_box_presentation_is_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidCatalog, match=rf"boxes\[0\]\.{next(iter(change))}"):
        parse_catalog(catalog({**box_doc("gold"), **change}))


def test_only_the_offer_decides_the_content_hash() -> None:
    def spec_of(**fields: Any) -> BoxSpec:
        (spec,) = parse_catalog(catalog(box_doc("b", **fields)))
        return spec

    plain = content_hash(spec_of())
    assert content_hash(spec_of(isActive=False, image={"u": 1}, customAttributes={"a": 1})) == plain
    # A prize stated with the defaults is the prize published before they existed.
    defaults = {"type": "digital", "imageUrl": None, "shippable": False}
    assert content_hash(spec_of(prizes=[{**prize_doc("Ring", 3200), **defaults}])) == plain
    for change in ({"type": "bonus"}, {"imageUrl": "https://x.example/r.png"}, {"shippable": True}):
        assert content_hash(spec_of(prizes=[{**prize_doc("Ring", 3200), **change}])) != plain


def test_the_hash_of_a_box_without_the_new_fields_is_unchanged() -> None:
    """Versions published before prize types existed keep their hash: re-importing the
    same document after the upgrade does not supersede them."""
    (spec,) = parse_catalog(catalog(box_doc("gold")))
    # This box's hash as the import computed it before prize types existed.
    before = "082e1ecd1f81f601e3ab8be77565fa8609b12a4282187c03d62a92d88715220d"
    assert content_hash(spec) == before


# --- publishing ------------------------------------------------------------------------------


@pytest.fixture
def harness(harness: ServiceHarness) -> ServiceHarness:
    """The shared harness, with the operator every catalog here belongs to."""
    harness.create_operator()
    return harness


def publish(harness: ServiceHarness, *boxes: dict[str, Any]) -> dict[str, tuple[int, bool]]:
    published = import_catalog(harness.uow, harness.clock, "acme", catalog(*boxes))
    return {p.slug: (p.box_version_id, p.created) for p in published}


def test_a_new_box_is_published_as_version_one(harness: ServiceHarness) -> None:
    ((version_id, created),) = publish(harness, box_doc("gold")).values()
    assert created
    with harness.uow() as uow:
        box = uow.catalog.get_box_version(1, version_id)
    assert box is not None
    assert (box.box_slug, box.version, box.active, box.price_minor) == ("gold", 1, True, 500)
    assert [(p.name, p.value_minor, p.odds) for p in box.prizes] == [("Ring", 3200, Decimal(1))]


def test_re_importing_an_unchanged_box_keeps_its_version(harness: ServiceHarness) -> None:
    first = publish(harness, box_doc("gold", prizes=two_prizes("0.5", "0.5")))
    again = publish(harness, box_doc("gold", prizes=two_prizes(0.5, Decimal("0.5"))))
    assert again["gold"] == (first["gold"][0], False)


def test_a_changed_box_gets_a_new_version_and_the_old_one_is_superseded(
    harness: ServiceHarness,
) -> None:
    first = publish(harness, box_doc("gold"), box_doc("silver"))
    second = publish(harness, box_doc("gold", price_minor=600), box_doc("silver"))

    old_id, new_id = first["gold"][0], second["gold"][0]
    assert new_id != old_id
    assert second["gold"][1] is True
    assert second["silver"] == (first["silver"][0], False)
    with harness.uow() as uow:
        old = uow.catalog.get_box_version(1, old_id)
        new = uow.catalog.get_box_version(1, new_id)
    assert old is not None
    assert new is not None
    assert (old.version, old.active, old.price_minor) == (1, False, 500)
    assert (new.version, new.active, new.price_minor) == (2, True, 600)
    assert old.box_id == new.box_id


def test_changing_a_prize_also_makes_a_new_version(harness: ServiceHarness) -> None:
    first = publish(harness, box_doc("gold"))
    second = publish(harness, box_doc("gold", prizes=[prize_doc("Ring", 3200, cashback_bps=5)]))
    assert second["gold"][0] != first["gold"][0]


def test_an_invalid_document_publishes_nothing(harness: ServiceHarness) -> None:
    with pytest.raises(InvalidCatalog):
        publish(harness, box_doc("gold"), box_doc("bad", price_minor=0))
    assert publish(harness, box_doc("gold"))["gold"][1] is True  # gold was not there yet


def test_importing_for_an_unknown_operator_fails(harness: ServiceHarness) -> None:
    with pytest.raises(OperatorNotFound):
        import_catalog(harness.uow, harness.clock, "nobody", catalog(box_doc("gold")))


def version(harness: ServiceHarness, version_id: int) -> Any:
    with harness.uow() as uow:
        found = uow.catalog.get_box_version(1, version_id)
    assert found is not None
    return found


def test_prize_type_image_and_shippability_are_published(harness: ServiceHarness) -> None:
    prizes = [
        {
            **prize_doc("Sword", 3200, odds="0.5"),
            "type": "physical",
            "imageUrl": "https://c.example/s.png",
        },
        {**prize_doc("Spins", 10, odds="0.5"), "type": "bonus"},
    ]
    published = publish(harness, box_doc("gold", prizes=prizes))

    sword, spins = version(harness, published["gold"][0]).prizes
    assert (sword.type, sword.image_url, sword.shippable) == (
        PrizeType.PHYSICAL,
        "https://c.example/s.png",
        True,
    )
    assert (spins.type, spins.image_url, spins.shippable) == (PrizeType.BONUS, None, False)


def test_deactivating_a_box_keeps_its_version_and_makes_it_unplayable(
    harness: ServiceHarness,
) -> None:
    first = publish(harness, box_doc("gold"))
    off = publish(harness, box_doc("gold", isActive=False))
    on = publish(harness, box_doc("gold", isActive=True))

    assert off["gold"] == on["gold"] == (first["gold"][0], False)
    assert version(harness, first["gold"][0]).version == 1
    assert version(harness, first["gold"][0]).active is True


def test_an_inactive_box_is_not_active(harness: ServiceHarness) -> None:
    (version_id, _) = publish(harness, box_doc("gold", isActive=False))["gold"]
    assert version(harness, version_id).active is False


def test_changing_an_inactive_box_publishes_an_inactive_version(harness: ServiceHarness) -> None:
    first = publish(harness, box_doc("gold", isActive=False))
    second = publish(harness, box_doc("gold", price_minor=700, isActive=False))

    old, new = version(harness, first["gold"][0]), version(harness, second["gold"][0])
    assert (old.version, old.active) == (1, False)
    assert (new.version, new.active, new.price_minor) == (2, False, 700)
    with harness.uow() as uow:
        statuses = uow.session.execute(  # type: ignore[attr-defined]
            text("SELECT id, status FROM box_versions ORDER BY id")
        ).all()
    assert [tuple(row) for row in statuses] == [
        (first["gold"][0], "superseded"),
        (second["gold"][0], "inactive"),
    ]


def test_presentation_changes_in_place(harness: ServiceHarness) -> None:
    publish(harness, box_doc("gold", image={"url": "https://c.example/1.png"}))
    again = publish(harness, box_doc("gold", customAttributes={"tier": "gold"}))

    assert again["gold"][1] is False
    with harness.uow() as uow:
        row = uow.session.execute(  # type: ignore[attr-defined]
            text("SELECT image, custom_attributes FROM boxes")
        ).one()
    assert tuple(row) == (None, {"tier": "gold"})
