"""devex's own pipeline (bitbucket-pipelines.yml at the root) publishes what the examples pin.

Docker cannot run here: the order and the shape of the publishing step are checked, and the
version check it starts with is run.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINE: dict[str, Any] = yaml.safe_load((ROOT / "bitbucket-pipelines.yml").read_text())
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def publish_script() -> list[str]:
    steps = [item["step"] for item in PIPELINE["pipelines"]["tags"]["v*"]]
    assert steps[0]["script"][-1] == ".ci/run"  # the tests first, as on every push
    assert PIPELINE["pipelines"]["default"][0]["step"] is steps[0]
    script: list[str] = steps[1]["script"]
    assert "docker" in steps[1]["services"]
    return script


def position(script: list[str], text: str) -> int:
    return next(n for n, line in enumerate(script) if text in line)


def test_the_image_is_built_smoke_tested_pushed_by_version_then_its_digest_printed() -> None:
    script = publish_script()
    order = [position(script, text) for text in (
        'docker build -t "$DEVEX_IMAGE:$VERSION" .', '.ci/image-smoke "$DEVEX_IMAGE:$VERSION"',
        'docker push "$DEVEX_IMAGE:$VERSION"', "RepoDigests", "-f pipe/Dockerfile",
        'docker push "$DEVEX_PIPE_IMAGE:$VERSION"')]
    assert order == sorted(order)
    assert "$(cat image-digest.txt)" in script[position(script, "-f pipe/Dockerfile")]
    assert (ROOT / ".ci" / "image-smoke").stat().st_mode & 0o111


@pytest.mark.parametrize(("tag", "code"), [(f"v{VERSION}", 0), ("v9.9.9", 1)])
def test_a_tag_that_is_not_the_package_version_publishes_nothing(tag: str, code: int) -> None:
    script = publish_script()
    lines = script[:position(script, "docker build")]
    done = subprocess.run(["bash", "-c", "set -e\n" + "\n".join(lines)], cwd=ROOT,
                          env={"BITBUCKET_TAG": tag, "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, check=False)
    assert done.returncode == code, done.stdout + done.stderr
