"""Money arithmetic: ISO 4217 exponents, exact FX conversion, rate parsing (contract §8)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lootbox.currencies import exponent, is_known
from lootbox.domain.money import convert_minor, format_rate, parse_rate


def convert(amount_minor: int, source: str, target: str, rate: str) -> int:
    return convert_minor(amount_minor, exponent(source), exponent(target), Decimal(rate))


def exact_half_up(amount_minor: int, from_exp: int, to_exp: int, rate: Decimal) -> int:
    """The contract's formula with exact rationals: no Decimal context involved."""
    value = Fraction(amount_minor) * Fraction(rate) * Fraction(10) ** (to_exp - from_exp)
    whole, remainder = divmod(value.numerator, value.denominator)
    return whole + (1 if 2 * remainder >= value.denominator else 0)


# --- exponents --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "expected"), [("JPY", 0), ("EUR", 2), ("USD", 2), ("KWD", 3), ("BHD", 3)]
)
def test_minor_unit_exponents_come_from_iso4217(currency: str, expected: int) -> None:
    assert exponent(currency) == expected


@pytest.mark.parametrize("code", ["XAU", "ABC", "eur"])
def test_codes_without_minor_units_or_unknown_are_not_known_currencies(code: str) -> None:
    assert not is_known(code)
    with pytest.raises(ValueError):
        exponent(code)


# --- conversion ---------------------------------------------------------------------------------


def test_eur_to_usd_matches_the_contract_example() -> None:
    # 320 EUR cents at 1.1042 = 353.344 USD cents.
    assert convert(320, "EUR", "USD", "1.1042") == 353


def test_eur_to_jpy_drops_to_whole_yen() -> None:
    # 5.00 EUR at 162.37 = 811.85 JPY, rounded half up to 812 (JPY has no minor unit).
    assert convert(500, "EUR", "JPY", "162.37") == 812


def test_eur_to_kwd_gains_a_third_decimal() -> None:
    # 5.00 EUR at 0.3321 = 1.6605 KWD = 1660.5 fils, half up to 1661.
    assert convert(500, "EUR", "KWD", "0.3321") == 1661


def test_jpy_to_eur_scales_up_to_cents() -> None:
    # 1000 JPY at 0.006159 = 6.159 EUR = 615.9 cents.
    assert convert(1000, "JPY", "EUR", "0.006159") == 616


def test_kwd_to_eur_scales_down_to_cents() -> None:
    # 1.234 KWD at 3.0 = 3.702 EUR = 370.2 cents.
    assert convert(1234, "KWD", "EUR", "3.0") == 370


def test_same_exponent_rate_one_is_the_identity() -> None:
    assert convert(987_654, "EUR", "USD", "1") == 987_654


@pytest.mark.parametrize(
    ("amount", "rate", "expected"),
    [
        ("5", "0.5", 3),  # exactly 2.5 -> 3 (banker's rounding would give 2)
        ("1", "0.5", 1),  # exactly 0.5 -> 1 (banker's rounding would give 0)
        ("3", "0.5", 2),  # exactly 1.5 -> 2
        ("1", "0.49", 0),  # just below a half -> down
        ("1", "0.51", 1),
        ("101", "1.005", 102),  # 101.505 -> 102
    ],
)
def test_halves_round_up_and_everything_else_to_nearest(
    amount: str, rate: str, expected: int
) -> None:
    assert convert(int(amount), "EUR", "USD", rate) == expected


def test_half_up_applies_after_the_exponent_shift() -> None:
    # 1 cent at 0.5 into KWD = 5 fils exactly; into JPY = 0.005 yen -> 0.
    assert convert(1, "EUR", "KWD", "0.5") == 5
    assert convert(50, "EUR", "JPY", "1") == 1  # 0.50 EUR = 0.5 JPY -> 1


def test_large_amounts_convert_exactly() -> None:
    amount = 9_000_000_000_000_000  # 90 trillion euros in cents
    assert convert(amount, "EUR", "USD", "1.1042") == 9_937_800_000_000_000
    assert convert(amount, "EUR", "KWD", "0.3321") == 29_889_000_000_000_000


@pytest.mark.parametrize("amount", [1.0, 500.5, True, False, "500", Decimal(500)])
def test_amount_must_be_an_int(amount: object) -> None:
    with pytest.raises(TypeError):
        convert_minor(amount, 2, 2, Decimal("1.1"))  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [1.1042, 1, "1.1042"])
def test_rate_must_be_a_decimal(rate: object) -> None:
    with pytest.raises(TypeError):
        convert_minor(100, 2, 2, rate)  # type: ignore[arg-type]


@given(
    amount=st.integers(min_value=0, max_value=10**15),
    coefficient=st.integers(min_value=1, max_value=10**12 - 1),
    places=st.integers(min_value=0, max_value=12),
    from_exp=st.sampled_from([0, 2, 3]),
    to_exp=st.sampled_from([0, 2, 3]),
)
def test_conversion_equals_the_exact_rational_rounded_half_up(
    amount: int, coefficient: int, places: int, from_exp: int, to_exp: int
) -> None:
    rate = Decimal(coefficient).scaleb(-places)
    assert convert_minor(amount, from_exp, to_exp, rate) == exact_half_up(
        amount, from_exp, to_exp, rate
    )


# A ledger amount is a BIGINT (up to 9.2e18 minor units) and a rate is any exact decimal
# the operator configured. The product below has 29 significant digits; Decimal's default
# 28-digit context rounds it (half-even) before the final half-up quantize.
DOUBLE_ROUNDING_AMOUNT = 6_999_999_992_047_344_495
DOUBLE_ROUNDING_RATE = Decimal("1.2345678901")


def test_conversion_rounds_once_even_beyond_28_significant_digits() -> None:
    # Exactly 8641975220881906872.4999999995: must round down.
    assert exact_half_up(DOUBLE_ROUNDING_AMOUNT, 2, 2, DOUBLE_ROUNDING_RATE) == (
        8_641_975_220_881_906_872
    )
    assert (
        convert_minor(DOUBLE_ROUNDING_AMOUNT, 2, 2, DOUBLE_ROUNDING_RATE)
        == 8_641_975_220_881_906_872
    )


def test_conversion_of_a_bigint_amount_into_a_higher_exponent_does_not_crash() -> None:
    amount = 6_563_452_504_667_815_067  # fits a BIGINT ledger column
    assert convert_minor(amount, 0, 3, Decimal("4220607.3")) == exact_half_up(
        amount, 0, 3, Decimal("4220607.3")
    )


# --- rates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.1042", Decimal("1.1042")), ("0.1", Decimal("0.1")), ("0.000001", Decimal("1e-6"))],
)
def test_parse_rate_keeps_the_exact_decimal(text: str, expected: Decimal) -> None:
    rate = parse_rate(text)
    assert rate.as_tuple() == expected.as_tuple()  # digit for digit: no float detour


@pytest.mark.parametrize(
    "text", ["abc", "", "0", "0.000", "-1", "-0.5", "NaN", "sNaN", "Infinity", "-Infinity"]
)
def test_parse_rate_rejects_non_positive_or_non_finite_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_format_rate_never_uses_exponent_notation() -> None:
    assert format_rate(Decimal("1E-7")) == "0.0000001"
    assert format_rate(Decimal("1.1042")) == "1.1042"
    assert format_rate(Decimal("1E+2")) == "100"
