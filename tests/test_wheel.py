"""A wheel built from the repository works on its own, in a fresh virtual environment."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                    str(ROOT)], check=True)
    wheel = next(dist.glob("devex_delivery-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "devex_cli/cli.py" in names
    for template in ("deployment", "pr_deployment", "tests", "security"):
        assert f"devex_cli/templates/teams/{template}.json.j2" in names
    assert not any(n.startswith("tests/") for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True)
    done = subprocess.run([str(env_dir / "bin" / "devex"), "--help"], capture_output=True,
                          text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "gate" in done.stdout
    gate_help = subprocess.run([str(env_dir / "bin" / "devex"), "gate", "qa-release", "--help"],
                               capture_output=True, text=True, check=False, cwd=tmp_path)
    assert gate_help.returncode == 0 and "--fail-open" in gate_help.stdout
    data = ROOT / "tests" / "data"
    card = subprocess.run([str(env_dir / "bin" / "devex"), "report", "tests", "--junit",
                           str(data / "jest-junit.xml"), "--dry-run"], capture_output=True,
                          text=True, check=False, cwd=tmp_path)
    assert card.returncode == 0, card.stderr
    assert "Basket applies vouchers" in card.stdout  # rendered from the templates in the wheel
