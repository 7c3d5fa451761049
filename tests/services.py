"""Real services the tests start on 127.0.0.1: Prometheus (Debian `prometheus`), and processes of
devex itself. Each is stopped when its context ends."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if get(url, timeout=1.0)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout}s")


@contextmanager
def running(argv: Sequence[str], ready_url: str, *, log: Path,
            env: dict[str, str] | None = None,
            timeout: float = 30.0) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_until_up(ready_url, process, timeout)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def prometheus_available() -> bool:
    """True when Prometheus is installed, and always in CI, where a missing one must fail."""
    import os

    return shutil.which("prometheus") is not None or os.environ.get("CI") == "true"


@contextmanager
def prometheus(folder: Path, targets: Sequence[str], *, honor_labels: bool = False,
               rule_files: Sequence[Path] = ()) -> Iterator[str]:
    """A Prometheus scraping `targets` (host:port on 127.0.0.1) every second; yields its URL."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(r) for r in rule_files],
        "scrape_configs": [{"job_name": "devex", "honor_labels": honor_labels,
                            "static_configs": [{"targets": list(targets)}]}],
    }))
    url = f"http://127.0.0.1:{port}"
    with running(["prometheus", f"--config.file={config}",
                  f"--storage.tsdb.path={folder / 'data'}",
                  f"--web.listen-address=127.0.0.1:{port}"], f"{url}/-/ready",
                 log=folder / "prometheus.log"):
        yield url


def query(prometheus_url: str, promql: str, *, wait: float = 20.0) -> list[dict[str, Any]]:
    """The result vector of an instant query, waiting until it is not empty."""
    deadline = time.monotonic() + wait
    while True:
        status, body = get(f"{prometheus_url}/api/v1/query?"
                           + urllib.parse.urlencode({"query": promql}))
        result: list[dict[str, Any]] = json.loads(body)["data"]["result"] if status == 200 else []
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def pushgateway_available() -> bool:
    import os

    return shutil.which("prometheus-pushgateway") is not None or os.environ.get("CI") == "true"


@contextmanager
def pushgateway(folder: Path) -> Iterator[str]:
    """A Prometheus Pushgateway on 127.0.0.1; yields its URL."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    with running(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}",
                  f"--persistence.file={folder / 'pushgateway.data'}"], f"{url}/-/ready",
                 log=folder / "pushgateway.log"):
        yield url
