"""docs/fairness.md cannot drift: its worked example, the verifier's output it shows and its
standalone script are checked against the code.

Each checked block in the page follows a ``<!-- checked: NAME -->`` line.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from lootbox.domain.fairness import (
    canonical_json,
    draw_digest,
    draw_message,
    draw_position,
    draw_value,
    first_52_bits,
    running_sums,
    server_seed_hash,
    snapshot_hash,
)
from lootbox.fairness import exact_decimal, load_snapshot, parse_snapshot, verify_draw
from lootbox.fairness.__main__ import main

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "fairness.md"
EXAMPLE_SNAPSHOT = REPO / "docs" / "fairness-example-snapshot.json"
CHECKED_BLOCK = re.compile(r"<!-- checked: ([\w-]+) -->\n```[\w-]*\n(.*?)\n```", re.DOTALL)


@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    found = dict(CHECKED_BLOCK.findall(PAGE.read_text(encoding="utf-8")))
    assert set(found) == {
        "standalone-verifier",
        "standalone-verifier-output",
        "example-snapshot",
        "example-canonical-json",
        "example-steps",
        "example-cli",
    }
    return found


@pytest.fixture(scope="module")
def steps(blocks: dict[str, str]) -> dict[str, str]:
    """The worked example's ``name   value`` lines."""
    pairs = (
        re.split(r" {2,}", line.strip(), maxsplit=1)
        for line in blocks["example-steps"].splitlines()
    )
    return {name: value for name, value in pairs}


def test_the_example_snapshot_on_the_page_is_the_file_and_its_hash_holds(
    blocks: dict[str, str],
) -> None:
    assert parse_snapshot(blocks["example-snapshot"]) == load_snapshot(str(EXAMPLE_SNAPSHOT))
    snapshot = load_snapshot(str(EXAMPLE_SNAPSHOT))
    assert snapshot_hash(snapshot) == snapshot["snapshotHash"]
    content = {k: v for k, v in snapshot.items() if k != "snapshotHash"}
    assert blocks["example-canonical-json"] == canonical_json(content)


def test_each_step_of_the_worked_example_is_what_the_code_computes(steps: dict[str, str]) -> None:
    seed, client_seed = steps["server seed"], steps["client seed"]
    nonce, reel = int(steps["nonce"]), int(steps["reel"])
    snapshot = load_snapshot(str(EXAMPLE_SNAPSHOT))
    odds = [prize["odds"] for prize in snapshot["prizes"]]
    digest = draw_digest(seed, client_seed, nonce, reel)
    sums = running_sums(odds)
    position = draw_position(seed, client_seed, nonce, reel, odds)
    prize = snapshot["prizes"][position]

    assert steps["server seed hash"] == server_seed_hash(seed)
    assert steps["message"] == draw_message(client_seed, nonce, reel)
    assert steps["digest"] == digest.hex()
    assert steps["first 13 hex digits"] == digest.hex()[:13]
    assert int(steps["u"]) == first_52_bits(digest) == int(steps["first 13 hex digits"], 16)
    assert steps["x"] == exact_decimal(draw_value(seed, client_seed, nonce, reel))
    assert steps["running sums"].split() == [exact_decimal(s) for s in sums]
    assert [int(t) for t in steps["thresholds T"].split()] == [math.ceil(s * 2**52) for s in sums]
    assert steps["prize"] == f"{prize['itemId']} {prize['name']}"


def test_the_integer_rule_on_the_page_names_the_same_prize(steps: dict[str, str]) -> None:
    u = int(steps["u"])
    bounds = [0, *(int(t) for t in steps["thresholds T"].split())]
    drawn = [i for i in range(len(bounds) - 1) if bounds[i] <= u < bounds[i + 1]]
    snapshot = load_snapshot(str(EXAMPLE_SNAPSHOT))
    assert [str(snapshot["prizes"][i]["itemId"]) for i in drawn] == [steps["prize"].split()[0]]
    assert Fraction(u, 2**52) == Fraction(steps["x"])


def test_the_command_on_the_page_prints_what_the_page_shows(
    blocks: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = blocks["example-cli"].splitlines()
    command = []
    while True:
        line = lines.pop(0)
        command.append(line.removeprefix("$ ").removesuffix("\\"))
        if not line.endswith("\\"):
            break
    argv = shlex.split(" ".join(command))
    assert argv[:3] == ["python", "-m", "lootbox.fairness"]
    monkeypatch.chdir(REPO)
    assert main(argv[3:]) == 0
    assert capsys.readouterr().out == "\n".join(lines) + "\n"


def test_the_standalone_script_on_the_page_finds_the_same_prize(
    blocks: dict[str, str], steps: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "verify_draw.py"
    script.write_text(blocks["standalone-verifier"] + "\n", encoding="utf-8")
    args = [steps[name] for name in ("server seed", "client seed", "nonce", "reel")]
    result = subprocess.run(
        [sys.executable, "-I", str(script), *args, str(EXAMPLE_SNAPSHOT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == blocks["standalone-verifier-output"] + "\n"


def test_the_standalone_script_refuses_a_changed_snapshot(
    blocks: dict[str, str], steps: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "verify_draw.py"
    script.write_text(blocks["standalone-verifier"] + "\n", encoding="utf-8")
    changed = tmp_path / "snapshot.json"
    changed.write_text(
        EXAMPLE_SNAPSHOT.read_text(encoding="utf-8").replace('"odds": 0.05', '"odds": 0.050'),
        encoding="utf-8",
    )
    args = [steps[name] for name in ("server seed", "client seed", "nonce", "reel")]
    result = subprocess.run(
        [sys.executable, "-I", str(script), *args, str(changed)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "does not match its snapshotHash" in result.stderr


def test_the_tampering_the_page_describes_is_refused_as_it_says(steps: dict[str, str]) -> None:
    from lootbox.fairness import SnapshotHashMismatch

    text = EXAMPLE_SNAPSHOT.read_text(encoding="utf-8")
    text = text.replace('"odds": 0.05', '"odds": 0.25').replace('"odds": 0.7', '"odds": 0.5')
    with pytest.raises(SnapshotHashMismatch) as refused:
        verify_draw(
            steps["server seed"],
            steps["client seed"],
            int(steps["nonce"]),
            int(steps["reel"]),
            parse_snapshot(text),
        )
    page = " ".join(PAGE.read_text(encoding="utf-8").split())
    assert "the snapshot's content hashes to" in str(refused.value)
    assert str(refused.value).endswith(": it was changed after it was published")
    assert "it was changed after it was published" in page
