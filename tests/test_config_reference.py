"""docs/configuration.md: generated from the settings code, complete, and true to the sources.

The reference cannot drift: the committed file is what the generator writes; every devex.toml key
carries its documentation; every environment variable read anywhere in src/ is listed (and every
one listed is read).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer

from devex_cli import config, config_reference
from devex_cli.config_reference import ENVIRONMENT, PIPELINE, sections

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "configuration.md"
SRC = ROOT / "src"


def test_the_committed_reference_is_what_the_code_generates() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == config_reference.render(), \
        "docs/configuration.md is stale: run python -m devex_cli.config_reference " \
        "docs/configuration.md"


def test_check_mode_tells_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "configuration.md"
    assert config_reference.main([str(target)]) == 0
    assert config_reference.main(["--check", str(target)]) == 0
    target.write_text(target.read_text().replace("`batch_size`", "`batch`"))
    assert config_reference.main(["--check", str(target)]) == 1
    assert "is stale" in capsys.readouterr().err


def test_defaults_in_the_reference_come_from_the_dataclasses() -> None:
    text = config_reference.render()
    row = next(line for line in text.splitlines() if line.startswith("| `max_response_bytes` |"))
    assert f"| `{config.HttpSettings().max_response_bytes}` |" in row
    row = next(line for line in text.splitlines() if line.startswith("| `ticket_pattern` |"))
    from devex_cli.tickets import DEFAULT_TICKET_PATTERN

    assert DEFAULT_TICKET_PATTERN in row  # the pattern used when none is configured, from tickets


def missing_documentation(settings_type: type) -> list[str]:
    """What a settings dataclass lacks for the reference: a text, an example, the commands,
    what happens when an optional key is unset, a TOML type."""
    problems = []
    for key in dataclasses.fields(settings_type):
        meta = key.metadata
        for item in ("doc", "example", "commands"):
            if not meta.get(item):
                problems.append(f"{settings_type.__name__}.{key.name} has no {item}")
        default = config_reference.default_of(key)
        if default in (None, (), {}) and not meta.get("unset"):
            problems.append(f"{settings_type.__name__}.{key.name}: say what happens unset")
        try:
            config_reference.toml_type(key)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def test_every_key_is_documented() -> None:
    documented = {s.settings_type for s in sections()}
    for section in sections():
        assert missing_documentation(section.settings_type) == [], section.heading
    # Every settings dataclass of config.py is a table of the reference, and every field of
    # Settings is a table (or marked as not a key of the file).
    settings_types = {c for _, c in inspect.getmembers(config, inspect.isclass)
                      if dataclasses.is_dataclass(c) and c.__module__ == config.__name__}
    assert settings_types - {config.Settings} == documented
    for key in dataclasses.fields(config.Settings):
        assert key.metadata.get("internal") or key.name in [*config.SECTIONS, "services"], \
            f"Settings.{key.name} is neither a section of the reference nor internal"


def test_a_key_without_documentation_is_caught() -> None:
    @dataclass(frozen=True)
    class NewSettings:
        documented: int = config._key(1, doc="A key.", example="2", commands=("collect",))
        bare: int = 3
        optional: str | None = config._key(doc="Optional.", example='"x"', commands=("collect",))
        odd: complex = field(default=1j, metadata={"doc": "odd", "example": "1",
                                                   "commands": ("collect",)})

    problems = missing_documentation(NewSettings)
    assert "NewSettings.bare has no doc" in problems
    assert "NewSettings.optional: say what happens unset" in problems
    assert any("no TOML type for odd" in p for p in problems)
    assert not any("documented" in p for p in problems)


def test_every_example_is_accepted_and_sets_its_key(tmp_path: Path) -> None:
    path = tmp_path / "devex.toml"
    path.write_text(config_reference.example_file(), encoding="utf-8")
    loaded = config.load_settings(path, environ={})
    defaults = config.Settings()
    for section in sections():
        if section.settings_type is config.ServiceSettings:
            here, default = loaded.services["payments"], config.ServiceSettings()
        elif section.settings_type is config.RouteRule:
            here, default = loaded.report.routes[0], config.RouteRule()
        else:
            here, default = getattr(loaded, section.path), getattr(defaults, section.path)
        for key in dataclasses.fields(section.settings_type):
            assert getattr(here, key.name) != getattr(default, key.name), \
                f"{section.heading} {key.name}: the example should show a value that is not " \
                "the default"


def test_commands_named_are_devex_commands() -> None:
    from devex_cli.cli import app

    def names(command: object, prefix: str = "") -> set[str]:
        found = {prefix} if prefix else set()
        if isinstance(command, typer.core.TyperGroup):
            for name, sub in command.commands.items():
                found |= names(sub, f"{prefix} {name}".strip())
        return found

    known = names(typer.main.get_command(app))
    assert {"collect", "gate qa-release", "push-metrics deployment"} <= known
    named = {c for section in sections() for key in dataclasses.fields(section.settings_type)
             for c in key.metadata["commands"]}
    named |= {c for variable in (*ENVIRONMENT, *PIPELINE) for c in variable.commands}
    assert named - known == set()


def test_environment_overrides_are_the_ones_the_keys_declare() -> None:
    declared = {name: f"{s}.{k}" for name, (s, k) in config.environment_keys().items()}
    assert declared == {"DEVEX_GITOPS_REPO": "gitops.repo", "JIRA_URL": "jira.url",
                        "DEVEX_CACHE_DIR": "cache.dir",
                        "DEVEX_COLLECT_SERVICES": "collect.services"}
    assert {v.name: v.overrides for v in ENVIRONMENT if v.overrides} == declared


@pytest.mark.parametrize(("variable", "where"), sorted(config.environment_keys().items()))
def test_each_declared_variable_overrides_the_file(tmp_path: Path, variable: str,
                                                   where: tuple[str, str]) -> None:
    section, key = where
    listed = isinstance(getattr(getattr(config.Settings(), section), key), tuple)

    def value(text: str) -> object:  # a list key is read as a list, from a variable by commas
        return (text,) if listed else text

    path = tmp_path / "devex.toml"
    written = '["/from/the/file"]' if listed else '"/from/the/file"'
    path.write_text(f'[{section}]\n{key} = {written}\n')
    assert getattr(getattr(config.load_settings(path, environ={}), section), key) == \
        value("/from/the/file")
    settings = config.load_settings(path, environ={variable: "/from/the/environment"})
    assert getattr(getattr(settings, section), key) == value("/from/the/environment")


# -- every environment variable read in src/ ------------------------------------------------

@dataclass
class Reads:
    names: set[str] = field(default_factory=set)  # exact names
    prefixes: set[str] = field(default_factory=set)  # TEAMS_WEBHOOK_ + a computed part
    unresolved: set[tuple[str, str]] = field(default_factory=set)  # (file, function)


def _is_environment(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id in ("environ", "env")) or \
        (isinstance(node, ast.Attribute) and node.attr == "environ")


def scan(source: str, where: str, reads: Reads) -> None:
    """Environment reads in a module: `environ.get(...)`, `env.get(...)`, `X.environ.get(...)`,
    `environ[...]`, `... in environ`, `os.getenv(...)`. A name built by a helper (`get("COMMIT")`
    reading `environ.get(f"BITBUCKET_{name}")`, `environ.get(variable_for(channel))`) is
    followed; what cannot be followed is reported with its function."""
    tree = ast.parse(source)
    parents = {child: parent for parent in ast.walk(tree)
               for child in ast.iter_child_nodes(parent)}
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}

    def enclosing(node: ast.AST) -> ast.FunctionDef | None:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.FunctionDef):
                return node
        return None

    def resolve(arg: ast.expr, at: ast.AST) -> None:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            reads.names.add(arg.value)
            return
        if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add) and \
                isinstance(arg.left, ast.Constant) and isinstance(arg.left.value, str):
            reads.prefixes.add(arg.left.value)
            return
        if isinstance(arg, ast.JoinedStr) and arg.values and \
                isinstance(arg.values[0], ast.Constant) and isinstance(arg.values[0].value, str):
            prefix = arg.values[0].value
            helper = enclosing(at)
            rest = arg.values[1:]
            if helper is not None and len(rest) == 1 and isinstance(rest[0], ast.FormattedValue) \
                    and isinstance(rest[0].value, ast.Name) \
                    and rest[0].value.id in [a.arg for a in helper.args.args]:
                calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call)
                         and isinstance(c.func, ast.Name) and c.func.id == helper.name]
                if calls and all(c.args and isinstance(c.args[0], ast.Constant) for c in calls):
                    reads.names |= {prefix + str(c.args[0].value)  # type: ignore[attr-defined]
                                    for c in calls}
                    return
            reads.prefixes.add(prefix)
            return
        if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and \
                arg.func.id in functions:
            returns = [r.value for r in ast.walk(functions[arg.func.id])
                       if isinstance(r, ast.Return) and r.value is not None]
            for value in returns:
                resolve(value, value)
            if returns:
                return
        function = enclosing(at)
        reads.unresolved.add((where, function.name if function else "<module>"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if (node.func.attr == "get" and _is_environment(node.func.value)) or \
                    node.func.attr == "getenv":
                resolve(node.args[0], node)
        elif isinstance(node, ast.Subscript) and _is_environment(node.value):
            resolve(node.slice, node)
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and \
                isinstance(node.ops[0], ast.In | ast.NotIn) and \
                _is_environment(node.comparators[0]):
            resolve(node.left, node)


def source_reads() -> Reads:
    reads = Reads()
    for path in sorted((SRC / "devex_cli").rglob("*.py")):
        scan(path.read_text(encoding="utf-8"), str(path.relative_to(SRC)), reads)
    return reads


def test_the_scanner_finds_every_form_of_read() -> None:
    reads = Reads()
    scan('''
import os
def variable_for(channel):
    return "TEAMS_WEBHOOK_" + channel.upper()
def context(environ, settings):
    def get(name):
        return environ.get(f"BITBUCKET_{name}") or None
    return get("COMMIT"), get("BRANCH")
def other(env, settings, channel):
    a = os.environ.get("NO_COLOR"), os.getenv("CI"), os.environ["HOME"]
    b = settings.environ.get("ARGOCD_SERVER", ""), env.get("JIRA_EMAIL")
    c = "XDG_CACHE_HOME" in os.environ, env.get(variable_for(channel))
    return env.get(f"PREFIX_{channel}")
def mystery(environ, name):
    return environ.get(name)
''', "example.py", reads)
    assert reads.names == {"BITBUCKET_COMMIT", "BITBUCKET_BRANCH", "NO_COLOR", "CI", "HOME",
                           "ARGOCD_SERVER", "JIRA_EMAIL", "XDG_CACHE_HOME"}
    assert reads.prefixes == {"TEAMS_WEBHOOK_", "PREFIX_"}
    assert reads.unresolved == {("example.py", "mystery")}


def _documented() -> tuple[set[str], set[str]]:
    names, prefixes = set(), set()
    for variable in (*ENVIRONMENT, *PIPELINE):
        if "<" in variable.name:
            prefixes.add(variable.name.split("<", 1)[0])
        else:
            names.add(variable.name)
    return names, prefixes


def test_every_environment_variable_read_in_src_is_in_the_reference() -> None:
    reads = source_reads()
    names, prefixes = _documented()
    assert {"JIRA_API_TOKEN", "BITBUCKET_COMMIT", "BITBUCKET_CLONE_DIR", "NO_COLOR"} <= reads.names
    assert reads.names - names == set(), "read in src/ but not in docs/configuration.md " \
        "(add them to config_reference.ENVIRONMENT or PIPELINE)"
    assert reads.prefixes - prefixes == set()
    # The one read whose names are not literal: load_settings reads the variables the keys
    # declare (`env=` of config._key), which the reference lists as overrides.
    assert reads.unresolved == {("devex_cli/config.py", "load_settings")}, \
        "an environment variable read under a computed name: make it literal or teach the scan"
    overrides = set(config.environment_keys())
    # ... and nothing is documented that src/ does not read.
    assert names - reads.names - overrides == set(), "documented but read nowhere in src/"
    assert prefixes - reads.prefixes == set()


def test_the_pipeline_variables_are_the_pipeline_context() -> None:
    from devex_cli.pipeline_context import PipelineContext

    fields = {f"BITBUCKET_{f.name.upper()}" for f in dataclasses.fields(PipelineContext)}
    assert {v.name for v in PIPELINE} == fields


def test_the_readme_points_at_the_reference_and_its_example_loads(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    configuration = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert "(docs/configuration.md)" in configuration
    example = configuration.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "devex.toml").write_text(example, encoding="utf-8")
    assert config.load_settings(tmp_path / "devex.toml", environ={}).gitops.environments

