"""The layers of docs/architecture.md, held: each module of the package imports only modules of
its own layer or of the layers below it (imports inside functions and under TYPE_CHECKING count
too), and every module has a layer, so a new one is placed on purpose."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "devex_cli"

# Bottom to top; a module is placed by its longest matching prefix (a package name covers its
# modules). Kept in the order and words of docs/architecture.md's diagram.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shared", ("devex_cli", "errors", "masking", "textsafe", "timeutil", "parallel", "progress",
                "interrupt", "cache", "store", "config", "http", "gitcli", "pipeline_context",
                "deployment_status")),
    ("core", ("dora", "tickets", "manifests", "gitops_layout", "gitops_reader", "notify.routing",
              "inputs")),
    ("sources", ("sources", "metrics.pushgateway", "notify.teams")),
    ("steps", ("changes", "records", "horizon", "argocd_refine", "tickets_ahead",
               "gates.decision")),
    ("views", ("views", "gates.messages", "notify.cards", "metrics.pipeline_metrics",
               "config_reference")),
    ("orchestration", ("collect", "status", "explain", "gates.qa_release", "notify.send",
                       "notify.card_context", "demo", "demo_jira", "metrics.exporter")),
    ("commands", ("cli", "__main__", "commands")),
)
_EMPTY_PACKAGES = {"dora", "gates", "inputs", "metrics", "notify", "sources", "views"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "devex_cli"
        found[name] = path
    return found


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def _imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name == "devex_cli" or name.startswith("devex_cli."):
                short = name.removeprefix("devex_cli.") if name != "devex_cli" else "devex_cli"
                if short in known:
                    found.add(short)
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _modules() if m not in _EMPTY_PACKAGES and _layer(m) is None]
    assert unplaced == [], f"place these in LAYERS and docs/architecture.md: {unplaced}"


@pytest.mark.parametrize("module", sorted(set(_modules()) - _EMPTY_PACKAGES))
def test_a_module_imports_only_its_layer_and_below(module: str) -> None:
    modules = _modules()
    here = _layer(module)
    assert here is not None
    upward = sorted(f"{name} ({LAYERS[layer][0]})"
                    for name in _imports(modules[module], set(modules) - _EMPTY_PACKAGES)
                    if (layer := _layer(name)) is not None and layer > here)
    assert upward == [], f"{module} ({LAYERS[here][0]}) imports a layer above it: {upward}"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: a core module that imports a view is caught."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from devex_cli.views.json import snapshot_json\n")
    imported = _imports(probe, {"views.json", "views"})
    assert imported == {"views.json"}
    assert _layer("views.json") > _layer("dora.compute")  # type: ignore[operator]
