"""The verifier anyone can run: ``lootbox.fairness.verify_draw`` and
``python -m lootbox.fairness verify``.

Expected prizes, digests and hashes were computed outside this code (openssl, integer
arithmetic, ``sha256sum`` of the canonical text written by hand); see test_fairness_draw.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.error
import urllib.request
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from lootbox.domain.fairness import snapshot_hash
from lootbox.fairness import (
    InvalidInput,
    InvalidSnapshot,
    ServerSeedHashMismatch,
    SnapshotHashMismatch,
    exact_decimal,
    load_snapshot,
    parse_snapshot,
    verify_draw,
)
from lootbox.fairness.__main__ import main

REPO = Path(__file__).resolve().parents[2]

SERVER_SEED = "89fc4b4a93e8f4f3202b8ba5a74ef6b0c56cb6ac382eb0bd2e51ec916e7f8631"
SERVER_SEED_HASH = "388ddbf83bf56c8c11f3d391f4b6ee08eaa0dd68f14e5f19a9b930d95bdd75ec"
CLIENT_SEED = "39999971b48bbd92"
# The snapshot as the service serves it: odds are JSON numbers with their catalog digits.
SNAPSHOT_TEXT = """{
  "boxVersionId": 1201, "boxId": 42, "versionNumber": 7, "name": "Dragon Box",
  "priceMinor": 500, "currency": "EUR", "houseEdgeBps": 700,
  "prizes": [
    {"itemId": 906, "name": "Golden Sword", "type": "physical", "valueMinor": 3200,
     "imageUrl": "https://cdn.example.com/prizes/sword.png", "odds": 0.05},
    {"itemId": 907, "name": "Silver Shield", "type": "physical", "valueMinor": 800,
     "imageUrl": null, "odds": 0.25},
    {"itemId": 908, "name": "Dragon Scale", "type": "digital", "valueMinor": 150,
     "imageUrl": null, "odds": 0.7}
  ],
  "snapshotHash": "525d1b548c398bc8f032812378fa72b9f3d7321b8c79f966914d151ffa34f381"
}"""
SNAPSHOT_HASH = "525d1b548c398bc8f032812378fa72b9f3d7321b8c79f966914d151ffa34f381"


def snapshot() -> dict[str, Any]:
    return parse_snapshot(SNAPSHOT_TEXT)


def write(tmp_path: Path, document: dict[str, Any] | str, name: str = "snapshot.json") -> str:
    path = tmp_path / name
    text = document if isinstance(document, str) else json.dumps(document, default=str)
    path.write_text(text, encoding="utf-8")
    return str(path)


def tampered_snapshot_text() -> str:
    # The sword made five times likelier, the scale less so; snapshotHash left as published.
    text = SNAPSHOT_TEXT.replace('"odds": 0.05', '"odds": 0.25', 1)
    return text.replace('"odds": 0.7', '"odds": 0.5', 1)


# --- verify_draw ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nonce", "reel", "item_id", "position", "digest", "u"),
    [
        (
            1,
            0,
            907,
            1,
            "236f18c8dca4ec6bd48ec6feab496467a650b364f43d87c7e7abc493801a1e45",
            623361026542158,
        ),
        (
            2,
            1,
            906,
            0,
            "099db70f5a745e6356746386d4b9b823e71ff4808d6aa8f3108d14dcf22ffef7",
            169167772034885,
        ),
        (
            0,
            0,
            908,
            2,
            "dfea990c04ab07472f6fa0faed5165ee7ce129e8ad3cf24a296583e16752d13a",
            3939178928687792,
        ),
    ],
)
def test_a_revealed_seed_redraws_the_prize(
    nonce: int, reel: int, item_id: int, position: int, digest: str, u: int
) -> None:
    draw = verify_draw(SERVER_SEED, CLIENT_SEED, nonce, reel, snapshot())
    assert draw.item_id == item_id
    assert draw.prize == snapshot()["prizes"][position]
    assert draw.position == position
    assert draw.digest.hex() == digest
    assert draw.u == u
    assert draw.x == Fraction(u, 2**52)
    assert draw.message == f"{CLIENT_SEED}:{nonce}:{reel}"
    assert draw.server_seed_hash == SERVER_SEED_HASH
    assert draw.snapshot_hash == SNAPSHOT_HASH
    assert draw.running_sums == (Fraction(1, 20), Fraction(3, 10), Fraction(1))
    assert draw.algorithm == "hmac_sha256_v1"


@pytest.mark.parametrize("commitment", [SERVER_SEED_HASH, SERVER_SEED_HASH.upper() + "\n"])
def test_the_revealed_seed_matches_the_commitment_shown_before(commitment: str) -> None:
    draw = verify_draw(
        SERVER_SEED, CLIENT_SEED, 1, 0, snapshot(), expected_server_seed_hash=commitment
    )
    assert draw.item_id == 907


def test_a_seed_that_is_not_the_committed_one_is_caught() -> None:
    other_commitment = SERVER_SEED_HASH[:-1] + "d"
    with pytest.raises(ServerSeedHashMismatch, match="not to the committed"):
        verify_draw(
            SERVER_SEED, CLIENT_SEED, 1, 0, snapshot(), expected_server_seed_hash=other_commitment
        )


def test_a_snapshot_changed_after_publication_is_caught() -> None:
    with pytest.raises(SnapshotHashMismatch, match="changed after it was published"):
        verify_draw(SERVER_SEED, CLIENT_SEED, 1, 0, parse_snapshot(tampered_snapshot_text()))


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["prizes"].reverse(),  # the order decides the draw
        lambda s: s["prizes"][0].update(name="Wooden Sword"),
        lambda s: s.update(extra=True),
        lambda s: s["prizes"][2].update(odds=Decimal("0.70")),  # same number, other digits
    ],
    ids=["order", "name", "added key", "odds digits"],
)
def test_any_change_to_the_snapshot_breaks_its_hash(change: Any) -> None:
    document = snapshot()
    change(document)
    with pytest.raises(SnapshotHashMismatch):
        verify_draw(SERVER_SEED, CLIENT_SEED, 1, 0, document)


def test_a_snapshot_whose_odds_do_not_sum_to_one_is_refused_even_with_a_matching_hash() -> None:
    document = parse_snapshot(tampered_snapshot_text())
    document["prizes"][2]["odds"] = Decimal("0.6")
    document["snapshotHash"] = snapshot_hash(document)
    with pytest.raises(InvalidSnapshot, match="sum to exactly 1"):
        verify_draw(SERVER_SEED, CLIENT_SEED, 1, 0, document)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (json.loads(SNAPSHOT_TEXT), "parse_float=decimal.Decimal"),  # float odds
        ({k: v for k, v in snapshot().items() if k != "snapshotHash"}, "no snapshotHash"),
        ([], "JSON object"),
    ],
    ids=["float odds", "no hash", "not an object"],
)
def test_what_is_not_a_snapshot_is_refused(document: Any, message: str) -> None:
    with pytest.raises(InvalidSnapshot, match=message):
        verify_draw(SERVER_SEED, CLIENT_SEED, 1, 0, document)


def test_prizes_that_are_not_a_list_of_objects_are_refused() -> None:
    document: dict[str, Any] = {"prizes": "906"}
    document["snapshotHash"] = snapshot_hash(document)
    with pytest.raises(InvalidSnapshot, match="list of objects"):
        verify_draw(SERVER_SEED, CLIENT_SEED, 1, 0, document)


@pytest.mark.parametrize(
    ("server_seed", "client_seed", "nonce", "reel", "message"),
    [
        (SERVER_SEED.upper(), CLIENT_SEED, 1, 0, "server seed"),
        (SERVER_SEED[:-2], CLIENT_SEED, 1, 0, "server seed"),
        (SERVER_SEED, "two words", 1, 0, "client seed"),
        (SERVER_SEED, "", 1, 0, "client seed"),
        (SERVER_SEED, CLIENT_SEED, -1, 0, "nonce"),
        (SERVER_SEED, CLIENT_SEED, 1, -1, "reel"),
    ],
)
def test_malformed_inputs_are_named(
    server_seed: str, client_seed: str, nonce: int, reel: int, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        verify_draw(server_seed, client_seed, nonce, reel, snapshot())


# --- load_snapshot ---------------------------------------------------------------------------


def test_a_snapshot_file_is_read_with_its_odds_exact(tmp_path: Path) -> None:
    loaded = load_snapshot(write(tmp_path, SNAPSHOT_TEXT))
    assert [p["odds"] for p in loaded["prizes"]] == [
        Decimal("0.05"),
        Decimal("0.25"),
        Decimal("0.7"),
    ]
    assert all(isinstance(p["odds"], Decimal) for p in loaded["prizes"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"odds": NaN}', "not valid JSON"),
        ('{"odds": Infinity}', "not valid JSON"),
        ('{"odds": 0.5, "odds": 0.25}', "appears twice"),
        ("[]", "JSON object"),
        ("\udcff", "not valid JSON"),
    ],
)
def test_text_that_is_not_a_snapshot_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidSnapshot, match=message):
        parse_snapshot(text.encode("utf-8", "surrogateescape"))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidSnapshot, match="cannot read the snapshot"):
        load_snapshot(str(tmp_path / "nowhere.json"))


class FakeResponse(io.BytesIO):
    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def test_a_snapshot_url_is_fetched_with_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, float]] = []

    def urlopen(request: urllib.request.Request, timeout: float) -> FakeResponse:
        calls.append((request.full_url, timeout))
        return FakeResponse(SNAPSHOT_TEXT.encode())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    url = "https://lootbox.example/fairness/box-version/1201/snapshot"
    loaded = load_snapshot(url, timeout=3)
    assert loaded["snapshotHash"] == SNAPSHOT_HASH
    assert calls == [(url, 3)]


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            urllib.error.HTTPError("u", 404, "Not Found", None, None),  # type: ignore[arg-type]
            "HTTP 404",
        ),
        (urllib.error.URLError("connection refused"), "connection refused"),
        (TimeoutError("timed out"), "timed out"),
    ],
)
def test_a_snapshot_url_that_fails_is_named(
    monkeypatch: pytest.MonkeyPatch, failure: Exception, message: str
) -> None:
    def urlopen(request: urllib.request.Request, timeout: float) -> FakeResponse:
        raise failure

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(InvalidSnapshot, match=message):
        load_snapshot("http://127.0.0.1:9/fairness/box-version/1/snapshot")


def test_a_body_too_large_for_a_snapshot_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda request, timeout: FakeResponse(b" " * (2 << 20))
    )
    with pytest.raises(InvalidSnapshot, match="more than"):
        load_snapshot("https://lootbox.example/snapshot")


# --- exact decimals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Fraction(0), "0"),
        (Fraction(1), "1"),
        (Fraction(3, 10), "0.3"),
        (Fraction(1, 20), "0.05"),
        (Fraction(-1, 8), "-0.125"),
        (Fraction(5, 2), "2.5"),
        (Fraction(1, 2**52), "0.0000000000000002220446049250313080847263336181640625"),
    ],
)
def test_x_and_running_sums_are_printed_with_every_digit(value: Fraction, text: str) -> None:
    assert exact_decimal(value) == text
    assert Fraction(Decimal(text)) == value


def test_a_fraction_without_a_finite_decimal_is_refused() -> None:
    with pytest.raises(ValueError, match="no finite decimal"):
        exact_decimal(Fraction(1, 3))


# --- the command line -----------------------------------------------------------------------


def cli_args(snapshot_path: str, *extra: str, nonce: str = "1") -> list[str]:
    return [
        "verify",
        "--server-seed",
        SERVER_SEED,
        "--client-seed",
        CLIENT_SEED,
        "--nonce",
        nonce,
        "--reel",
        "0",
        "--snapshot",
        snapshot_path,
        *extra,
    ]


def test_the_command_prints_the_prize_and_each_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(cli_args(write(tmp_path, SNAPSHOT_TEXT), "--server-seed-hash", SERVER_SEED_HASH))
    out = capsys.readouterr().out
    assert status == 0
    assert out.splitlines()[0] == 'prize: itemId 907 "Silver Shield" (#1, counting from #0)'
    for expected in (
        "matches --server-seed-hash",
        f"{CLIENT_SEED}:1:0",
        "236f18c8dca4ec6bd48ec6feab496467a650b364f43d87c7e7abc493801a1e45",
        "0x236f18c8dca4e = 623361026542158",
        "u / 2^52 = 0.138413952864215428206762226182036101818084716796875",
        "907     0.25  0.3          greater than x: drawn",
    ):
        assert expected in out


def test_the_command_fails_on_a_seed_that_was_not_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli_args(write(tmp_path, SNAPSHOT_TEXT), "--server-seed-hash", "0" * 64)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "NOT VERIFIED" in captured.err
    assert "not to the committed" in captured.err


def test_the_command_fails_on_a_tampered_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli_args(write(tmp_path, tampered_snapshot_text()))) == 1
    assert "changed after it was published" in capsys.readouterr().err


def test_the_command_fails_on_a_malformed_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli_args(write(tmp_path, SNAPSHOT_TEXT))
    args[args.index(SERVER_SEED)] = SERVER_SEED.upper()
    assert main(args) == 1
    assert "64 lowercase hex" in capsys.readouterr().err


@pytest.mark.parametrize("nonce", ["-1", "1.5", "1_000", "x", "\u0663"])
def test_the_command_refuses_a_nonce_that_is_not_a_whole_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nonce: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(cli_args(write(tmp_path, SNAPSHOT_TEXT), nonce=nonce))
    assert exit_.value.code == 2
    assert "whole number" in capsys.readouterr().err


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lootbox.fairness", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_python_m_lootbox_fairness_verifies_a_snapshot_file(tmp_path: Path) -> None:
    result = run_module(*cli_args(write(tmp_path, SNAPSHOT_TEXT)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('prize: itemId 907 "Silver Shield"')


def test_python_m_lootbox_fairness_rejects_a_tampered_snapshot(tmp_path: Path) -> None:
    result = run_module(*cli_args(write(tmp_path, tampered_snapshot_text())))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "NOT VERIFIED" in result.stderr
    assert SNAPSHOT_HASH in result.stderr


def test_python_m_lootbox_fairness_explains_itself() -> None:
    for args in (["--help"], ["verify", "--help"]):
        result = run_module(*args)
        assert result.returncode == 0
        assert "verify" in result.stdout
    assert "--server-seed-hash" in run_module("verify", "--help").stdout


def test_the_verifier_runs_on_the_standard_library_alone() -> None:
    # -S: no site-packages at all; only the repository's lootbox package is importable.
    code = (
        "import sys, lootbox.fairness.__main__;"
        "print(*sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["__main__", "lootbox"]
