"""``pip install .`` and ``pip install -e .``, as the README tells an operator's engineer:
afterwards the SDK (``lootbox.client`` and the ``lootbox.signing`` it needs) imports from any
directory, with ``requests`` installed as its one dependency.

Each install goes into a fresh virtualenv from a copy of the repository, so the work tree is
never written to (no ``build/`` or ``*.egg-info``). pip fetches the build backend and
``requests`` from its configured index, as it does for the README's command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lootbox.client import __version__

ROOT = Path(__file__).resolve().parents[2]
NOT_THE_PROJECT = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    "instance",
    ".*_cache",
    ".hypothesis",
)
PROBE = """
import importlib.util, json, lootbox.client, lootbox.signing
from lootbox.client import LootboxClient
print(json.dumps({
    "client": lootbox.client.__file__,
    "signing": lootbox.signing.__file__,
    "version": lootbox.client.__version__,
    "alsoInstalled": [name for name in ("app", "bench", "config", "schemas", "tests")
                      if importlib.util.find_spec(name) is not None],
}))
"""


def run(*args: str | Path, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    # Nothing of this checkout may leak into the new environment.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("editable", [False, True], ids=["pip install .", "pip install -e ."])
def test_installing_the_project_exposes_the_client_anywhere(tmp_path: Path, editable: bool) -> None:
    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    shutil.copytree(ROOT, checkout, ignore=NOT_THE_PROJECT)
    elsewhere.mkdir()
    made = run(sys.executable, "-m", "venv", tmp_path / "venv", cwd=tmp_path, timeout=30)
    assert made.returncode == 0, made.stderr
    python = tmp_path / "venv" / "bin" / "python"
    before = run(python, "-c", PROBE, cwd=elsewhere, timeout=10)
    assert "No module named 'lootbox'" in before.stderr, before  # the test can fail

    install = ["-e", checkout] if editable else [checkout]
    pip = run(
        python, "-m", "pip", "install", "-q", "--retries", "1", *install, cwd=elsewhere, timeout=45
    )
    assert pip.returncode == 0, pip.stderr
    after = run(python, "-c", PROBE, cwd=elsewhere, timeout=10)

    assert after.returncode == 0, after.stderr
    found = json.loads(after.stdout)
    where = checkout if editable else tmp_path / "venv"
    assert Path(found["client"]).is_relative_to(where), found
    assert Path(found["signing"]).is_relative_to(where), found
    assert found["version"] == __version__
    assert found["alsoInstalled"] == []  # the lootbox package only
