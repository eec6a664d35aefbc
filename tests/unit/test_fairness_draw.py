"""Provably fair draws (hmac_sha256_v1): known answers, the odds over many draws, and
properties over random odds tables.

The known answers were computed once, outside this code, from the contract's text: the
digests and seed hashes with ``openssl dgst -sha256 [-hmac SERVER_SEED]`` on the message's
ASCII bytes, ``u`` as the digest's first 13 hex digits, and the prize by comparing integers
(running sum of the odds scaled by 10^80, times 2^52, against u × 10^80). Never regenerate
them from this code: a change that alters any outcome must fail here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lootbox.domain.fairness import (
    ALGORITHM,
    draw_digest,
    draw_message,
    draw_position,
    draw_value,
    first_52_bits,
    is_valid_client_seed,
    is_valid_server_seed,
    new_client_seed,
    new_server_seed,
    prize_position,
    running_sums,
    server_seed_hash,
    value_of_digest,
)
from lootbox.fairness import exact_decimal

SEED_A = "b45ceb9f3eb541b8dd997790721f03e28f779dbbf1372281a2e8c0d312b0e8fa"
SEED_B = "ceb0ca7dfdea98479d8bac7a276201f0b15ea723220dbccbd8e34dd7a832efba"
SEED_C = "51268a243a5087179e0ff65f5d42b7cb3505f01d5fe5bb3d29992853f85e738d"

THREE = ("0.05", "0.25", "0.7")
FIVE = ("0.4", "0.3", "0.15", "0.1", "0.05")

# x of the draw (SEED_C, "edge", nonce 5, reel 0), exactly: the boundary tables below put a
# running sum exactly on it, or 10^-60 above it.
EDGE_X = "0.1090930998712174027076571292127482593059539794921875"

# (server seed, client seed, nonce, reel, digest, u, x, odds, prize position)
VECTORS = [
    (
        SEED_A,
        "6a2262ec69ed2d71",
        0,
        0,
        "c7d0ba7b6ec4744556a2171f583403cc00eeab8d4f157f5294003797417d3266",
        3515188732423239,
        "0.7805286933278396954705158350407145917415618896484375",
        THREE,
        2,
    ),
    (
        SEED_A,
        "6a2262ec69ed2d71",
        1,
        0,
        "62ef401510cfe198a4559b4253bbb9675e199e6771de4c1c0b4f68bdb5d05d18",
        1740475389250814,
        "0.386463170187937077315609712968580424785614013671875",
        THREE,
        2,
    ),
    (
        SEED_A,
        "6a2262ec69ed2d71",
        1,
        2,
        "836d49fa9f2b4ee6965386ecfe54b683972304637d5cbcf7525273aaf952d4c6",
        2312086653366964,
        "0.51338636749930532943153593805618584156036376953125",
        THREE,
        2,
    ),
    (
        SEED_A,
        "lucky:7",
        42,
        1,
        "345837ebfd0b430a75bd4a509c9a3557dcef4e4c30e1dffee07e6e137b94df6f",
        920855999664308,
        "0.20447110663830603272117514279671013355255126953125",
        THREE,
        1,
    ),
    (
        SEED_B,
        "~!#$%&'()*+,-./:;<=>?@[\\]^_`{|}",
        123456789012,
        0,
        "b75a213c83e5c801f0c95eeaf1c2841e7dbc05a3288a0598bba1b92c358ab0a0",
        3225563720859228,
        "0.71621902205870124902276074863038957118988037109375",
        FIVE,
        2,
    ),
    (
        SEED_B,
        "a",
        2**53 + 1,
        3,
        "4f2bb1400a2546d9168bf2f5a5bebb649ff39872553a926769fcd65b753ec7ca",
        1392785215234644,
        "0.30926044286220122359054585103876888751983642578125",
        ("1",),
        0,
    ),
    (
        SEED_B,
        "Z" * 64,
        7,
        0,
        "c771b59bca2a8aceaa897a852fd881df0071614786410180f90f84460c963f22",
        3508659073884840,
        "0.7790788178773855321423980058170855045318603515625",
        ("0.123456789", "0.876543211"),
        1,
    ),
    (
        SEED_C,
        '"quoted"\\',
        999,
        4,
        "6fdeaf838f5ce0d2de172340c944acbbc220c97804c4fc7cd47801955eeac20d",
        1968035488921038,
        "0.436991662615912712652743721264414489269256591796875",
        ("1E-7", "0.4999999", "0.5"),
        1,
    ),
    (
        SEED_C,
        "x",
        0,
        0,
        "1ad7c8e5941a66ad0d6f7f655185149e2598acee2fe5329f7a3a620f01e84a14",
        472225452474790,
        "0.104855114030308893546816761954687535762786865234375",
        FIVE,
        0,
    ),
    (
        SEED_A,
        "6a2262ec69ed2d71",
        2**64 - 1,
        9,
        "b4c94f1bf3211c29d26cdba4e5bd18cd0971f16f130e293ab2cdbf68adde268e",
        3180427338527249,
        "0.7061967318760518086406818838440813124179840087890625",
        FIVE,
        2,
    ),
    # x falls exactly on the first running sum: "greater than x" is strict, prize 0 loses.
    (
        SEED_C,
        "edge",
        5,
        0,
        "1bed86802a8831e4e9751c5fac38e308d3c61d977e4804549d5783ff00498beb",
        491311643928707,
        EDGE_X,
        (EDGE_X, "0.8909069001287825972923428707872517406940460205078125"),
        1,
    ),
    # The same draw with the first odds 10^-60 larger: now prize 0 wins.
    (
        SEED_C,
        "edge",
        5,
        0,
        "1bed86802a8831e4e9751c5fac38e308d3c61d977e4804549d5783ff00498beb",
        491311643928707,
        EDGE_X,
        (
            "0.109093099871217402707657129212748259305953979492187500000001",
            "0.890906900128782597292342870787251740694046020507812499999999",
        ),
        0,
    ),
    # x exactly on the second running sum of three: the third prize wins.
    (
        SEED_C,
        "edge",
        5,
        0,
        "1bed86802a8831e4e9751c5fac38e308d3c61d977e4804549d5783ff00498beb",
        491311643928707,
        EDGE_X,
        (
            "0.1",
            "0.0090930998712174027076571292127482593059539794921875",
            "0.8909069001287825972923428707872517406940460205078125",
        ),
        2,
    ),
]


def decimals(values: Sequence[str]) -> list[Decimal]:
    return [Decimal(v) for v in values]


# --- known answers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_seed", "client_seed", "nonce", "reel", "digest", "u", "x", "odds", "position"),
    VECTORS,
    ids=[
        "nonce 0",
        "nonce 1",
        "nonce 1 reel 2",
        "colon in the client seed",
        "punctuation client seed, 5 prizes",
        "1 prize, nonce 2^53+1",
        "64-character client seed, 9-digit odds",
        "quotes and backslash, odds 1E-7",
        "5 prizes, the first drawn",
        "nonce 2^64-1, reel 9",
        "x on the first running sum",
        "first running sum 1E-60 above x",
        "x on the second running sum",
    ],
)
def test_each_known_draw_gives_its_digest_value_and_prize(
    server_seed: str,
    client_seed: str,
    nonce: int,
    reel: int,
    digest: str,
    u: int,
    x: str,
    odds: tuple[str, ...],
    position: int,
) -> None:
    assert draw_digest(server_seed, client_seed, nonce, reel).hex() == digest
    assert first_52_bits(bytes.fromhex(digest)) == u
    value = draw_value(server_seed, client_seed, nonce, reel)
    assert value == Fraction(u, 2**52)
    assert exact_decimal(value) == x
    assert draw_position(server_seed, client_seed, nonce, reel, decimals(odds)) == position


@pytest.mark.parametrize(
    ("server_seed", "expected"),
    [
        (SEED_A, "894ad6da5df39b3f1f189d29e9a7c275024660af74475f3b1aa79131296d4104"),
        (SEED_B, "1fd718c02eb2685abe69b2aed4e08e5c051f3f2f9cc9e205979df3c3cf2ceb06"),
        (SEED_C, "445006253405bb351117c5b6af3532cdcb1d807c820f3bc636cf637c653e7e88"),
    ],
)
def test_the_server_seed_hash_is_sha256_of_its_64_characters(
    server_seed: str, expected: str
) -> None:
    assert server_seed_hash(server_seed) == expected


def test_the_message_joins_client_seed_nonce_and_reel_with_colons() -> None:
    assert draw_message("lucky:7", 42, 1) == "lucky:7:42:1"
    assert ALGORITHM == "hmac_sha256_v1"


def test_u_is_the_first_13_hex_digits_of_the_digest() -> None:
    digest = bytes.fromhex("ffffffffffffff" + "00" * 25)
    assert first_52_bits(digest) == 2**52 - 1
    assert value_of_digest(digest) == 1 - Fraction(1, 2**52)  # x stays below 1
    assert value_of_digest(bytes(32)) == 0
    with pytest.raises(ValueError, match="32 bytes"):
        first_52_bits(bytes(31))


# --- seeds -------------------------------------------------------------------------------


def test_a_new_server_seed_is_its_32_random_bytes_in_lowercase_hex() -> None:
    seed = new_server_seed(bytes(range(0xE0, 0x100)))
    assert seed == "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
    assert is_valid_server_seed(seed)
    assert is_valid_server_seed(new_server_seed(secrets.token_bytes(32)))
    for wrong in (bytes(31), bytes(33), b""):
        with pytest.raises(ValueError, match="32 random bytes"):
            new_server_seed(wrong)


def test_a_new_client_seed_is_16_hex_characters() -> None:
    assert new_client_seed(bytes.fromhex("6a2262ec69ed2d71")) == "6a2262ec69ed2d71"
    assert is_valid_client_seed(new_client_seed(secrets.token_bytes(8)))
    with pytest.raises(ValueError, match="8 random bytes"):
        new_client_seed(bytes(16))


@pytest.mark.parametrize(
    "seed",
    [SEED_A.upper(), SEED_A[:-1], SEED_A + "0", SEED_A[:-1] + "g", " " + SEED_A[1:], SEED_A + "\n"],
)
def test_a_server_seed_other_than_64_lowercase_hex_characters_is_refused(seed: str) -> None:
    assert not is_valid_server_seed(seed)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        server_seed_hash(seed)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        draw_value(seed, "abc", 0, 0)


@pytest.mark.parametrize("seed", ["a", "!", "~" * 64, "lucky:7", "6a2262ec69ed2d71", '"\\`$'])
def test_client_seeds_of_1_to_64_printable_ascii_characters_are_valid(seed: str) -> None:
    assert is_valid_client_seed(seed)


@pytest.mark.parametrize(
    "seed", ["", "a" * 65, "has space", "tab\t", "new\nline", "caf\u00e9", "\x7f", "a\n"]
)
def test_other_client_seeds_are_refused(seed: str) -> None:
    assert not is_valid_client_seed(seed)
    with pytest.raises(ValueError, match="printable ASCII"):
        draw_value(SEED_A, seed, 0, 0)


@pytest.mark.parametrize(("nonce", "reel"), [(-1, 0), (0, -1), (True, 0), (0, False), ("1", 0)])
def test_nonce_and_reel_are_whole_numbers_of_at_least_zero(nonce: object, reel: object) -> None:
    with pytest.raises(ValueError, match="at least 0"):
        draw_value(SEED_A, "abc", nonce, reel)  # type: ignore[arg-type]


# --- odds --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("odds", "message"),
    [
        ((), "at least one prize"),
        (("0.5", "0.4"), "sum to exactly 1"),
        (("0.5", "0.6"), "sum to exactly 1"),
        (("0.3333", "0.3333", "0.3333"), "sum to exactly 1"),
        (("0.5", "0.5000000000000000000000000000000000001"), "sum to exactly 1"),
        (("1", "0"), "greater than 0"),
        (("1.5", "-0.5"), "greater than 0"),
        (("NaN",), "greater than 0"),
        (("Infinity",), "greater than 0"),
    ],
)
def test_odds_that_are_not_a_prize_table_are_refused(odds: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        running_sums(decimals(odds))


def test_float_odds_are_refused_because_their_digits_are_not_the_published_ones() -> None:
    with pytest.raises(TypeError, match="float"):
        running_sums([0.25, 0.75])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="bool"):
        running_sums([True])  # type: ignore[list-item]


def test_running_sums_are_exact_where_binary_floats_are_not() -> None:
    # 0.1 + 0.2 + 0.7 is 0.9999999999999999 in floats; exactly 1 here.
    assert running_sums(decimals(("0.1", "0.2", "0.7"))) == (
        Fraction(1, 10),
        Fraction(3, 10),
        Fraction(1),
    )
    assert running_sums([1]) == (Fraction(1),)


def test_the_prize_is_the_first_whose_running_sum_is_strictly_greater_than_x() -> None:
    sums = running_sums(decimals(THREE))
    assert prize_position(Fraction(0), sums) == 0
    assert prize_position(Fraction(1, 20) - Fraction(1, 2**52), sums) == 0
    assert prize_position(Fraction(1, 20), sums) == 1  # on the boundary: the next prize
    assert prize_position(Fraction(3, 10), sums) == 2
    assert prize_position(1 - Fraction(1, 2**52), sums) == 2
    with pytest.raises(ValueError, match="beyond"):
        prize_position(Fraction(1), sums)


# --- the odds over many draws --------------------------------------------------------------

DRAWS = 100_000
# Chi-squared critical values at p = 0.001 (the upper 0.1 % point), by degrees of freedom.
CHI_SQUARED_CRITICAL_P001 = {2: 13.816, 4: 18.467}


@pytest.fixture(scope="module")
def simulated_values() -> list[Fraction]:
    """x of 100,000 consecutive rounds of one seed pair, as a player's rounds would be."""
    return [draw_value(SEED_A, "6a2262ec69ed2d71", nonce, 0) for nonce in range(DRAWS)]


def prize_counts(values: Sequence[Fraction], odds: Sequence[Decimal]) -> list[int]:
    sums = running_sums(odds)
    counts = Counter(prize_position(x, sums) for x in values)
    return [counts[position] for position in range(len(odds))]


def chi_squared(counts: Sequence[int], odds: Sequence[Decimal]) -> float:
    expected = [sum(counts) * float(p) for p in odds]
    return sum((count - e) ** 2 / e for count, e in zip(counts, expected, strict=True))


@pytest.mark.parametrize("odds", [THREE, FIVE], ids=["3 prizes", "5 prizes"])
def test_100000_draws_follow_the_published_odds(
    simulated_values: list[Fraction], odds: tuple[str, ...]
) -> None:
    counts = prize_counts(simulated_values, decimals(odds))
    assert chi_squared(counts, decimals(odds)) < CHI_SQUARED_CRITICAL_P001[len(odds) - 1]


def test_the_chi_squared_check_notices_odds_one_point_off(
    simulated_values: list[Fraction],
) -> None:
    # Draws made with 5 % / 25 % / 70 %, judged against 6 % / 24 % / 70 %, must fail it.
    counts = prize_counts(simulated_values, decimals(THREE))
    assert chi_squared(counts, decimals(("0.06", "0.24", "0.7"))) > CHI_SQUARED_CRITICAL_P001[2]


# --- properties over random odds tables ----------------------------------------------------


@st.composite
def odds_tables(draw: st.DrawFn) -> tuple[list[Decimal], list[int], int]:
    """Positive decimal odds summing to exactly 1, with their integer weights out of
    10^places; some written with trailing zeros, some normalized."""
    places = draw(st.integers(min_value=1, max_value=28))
    scale = 10**places
    count = draw(st.integers(min_value=1, max_value=min(12, scale)))
    cuts = draw(
        st.lists(
            st.integers(min_value=1, max_value=scale - 1),
            min_size=count - 1,
            max_size=count - 1,
            unique=True,
        )
    )
    bounds = [0, *sorted(cuts), scale]
    weights = [high - low for low, high in pairwise(bounds)]
    normalize = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    odds = [
        Decimal(f"{weight}E-{places}").normalize() if flat else Decimal(f"{weight}E-{places}")
        for weight, flat in zip(weights, normalize, strict=True)
    ]
    return odds, weights, scale


server_seeds = st.binary(min_size=32, max_size=32).map(bytes.hex)
client_seeds = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64
)


def position_by_integers(
    server_seed: str, client_seed: str, nonce: int, reel: int, weights: list[int], scale: int
) -> int:
    """The contract's draw with nothing but hmac and integers: prize i wins when its
    running weight / scale > u / 2^52, that is running weight × 2^52 > u × scale."""
    message = f"{client_seed}:{nonce}:{reel}".encode("ascii")
    digest = hmac.new(server_seed.encode("ascii"), message, hashlib.sha256).hexdigest()
    u = int(digest[:13], 16)
    running = 0
    for position, weight in enumerate(weights):
        running += weight
        if running * 2**52 > u * scale:
            return position
    raise AssertionError("the weights do not add up to the scale")


@settings(max_examples=300, deadline=None)
@given(
    table=odds_tables(),
    server_seed=server_seeds,
    client_seed=client_seeds,
    nonce=st.integers(min_value=0, max_value=2**64),
    reel=st.integers(min_value=0, max_value=64),
)
def test_every_draw_is_a_prize_of_the_table_and_the_exact_one(
    table: tuple[list[Decimal], list[int], int],
    server_seed: str,
    client_seed: str,
    nonce: int,
    reel: int,
) -> None:
    odds, weights, scale = table
    position = draw_position(server_seed, client_seed, nonce, reel, odds)
    assert 0 <= position < len(odds)
    assert position == position_by_integers(server_seed, client_seed, nonce, reel, weights, scale)


@settings(max_examples=300, deadline=None)
@given(table=odds_tables())
def test_running_sums_are_the_exact_sums_of_the_odds(
    table: tuple[list[Decimal], list[int], int],
) -> None:
    odds, weights, scale = table
    sums = running_sums(odds)
    running = 0
    for weight, running_sum in zip(weights, sums, strict=True):
        running += weight
        assert running_sum == Fraction(running, scale)
    assert sums[-1] == 1
    assert all(low < high for low, high in pairwise(sums))


@settings(max_examples=300, deadline=None)
@given(table=odds_tables(), data=st.data())
def test_an_x_on_a_running_sum_draws_the_next_prize(
    table: tuple[list[Decimal], list[int], int], data: st.DataObject
) -> None:
    odds, _, _ = table
    sums = running_sums(odds)
    if len(sums) < 2:
        return
    boundary = data.draw(st.integers(min_value=0, max_value=len(sums) - 2))
    assert prize_position(sums[boundary], sums) == boundary + 1
    below = sums[boundary] - Fraction(1, 10**40)
    assert prize_position(below, sums) <= boundary
