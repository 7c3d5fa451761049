from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devex_cli.errors import UsageError
from devex_cli.tickets import compile_ticket_pattern, extract_ticket_keys


def test_keys_in_subject_and_body_in_first_appearance_order() -> None:
    messages = [
        "[PROJ-12] Add login form\n\nAlso touches WEB-7.",
        "Merge pull request #4 from feature/PROJ-3 (PROJ-3, PROJ-12)",
        "fix: typo",
    ]
    assert extract_ticket_keys(messages) == ["PROJ-12", "WEB-7", "PROJ-3"]


def test_ticket_like_words_are_candidates_for_jira_to_judge() -> None:
    # UTF-8 and SHA-256 have the shape of keys; only Jira can tell they are not tickets.
    assert extract_ticket_keys(["Use UTF-8 and SHA-256 for PROJ-1"]) == [
        "UTF-8", "SHA-256", "PROJ-1"]


def test_project_restriction() -> None:
    assert extract_ticket_keys(["UTF-8 PROJ-1 WEB-2"], projects=["proj"]) == ["PROJ-1"]


def test_not_keys() -> None:
    assert extract_ticket_keys(["PROJ-0 proj-1 X-1 PROJ-01 aPROJ-1"]) == []


def test_custom_pattern_with_a_group() -> None:
    pattern = compile_ticket_pattern(r"(?:refs|fixes) #?([A-Z]+-[0-9]+)")
    assert extract_ticket_keys(["fixes ABC-1, mentions XYZ-2"], pattern=pattern) == ["ABC-1"]


def test_invalid_pattern_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a valid regular expression"):
        compile_ticket_pattern("([A-Z")


@given(st.lists(st.text(), max_size=5))
def test_any_message_gives_unique_well_formed_keys(messages: list[str]) -> None:
    keys = extract_ticket_keys(messages)
    assert len(keys) == len(set(keys))
    for key in keys:
        project, number = key.rsplit("-", 1)
        assert project[0].isalpha() and number.isdigit() and not number.startswith("0")


class _CountedProjects(tuple[str, ...]):
    """Project keys that count how often they are read through."""

    reads = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        type(self).reads += 1
        return super().__iter__()


def test_a_rule_reads_its_projects_once_however_many_commits() -> None:
    """The collector asks a rule for each commit's keys: at 2,000 services (2,000 projects and
    1.5 million commits) making the project set on every call was 3 billion steps."""
    from devex_cli.changes import TicketRule
    from devex_cli.config import JiraSettings, Settings

    projects = _CountedProjects(f"P{n:04d}" for n in range(2000))
    rule = TicketRule(Settings(jira=JiraSettings(projects=projects)))
    for n in range(500):
        assert rule.keys([f"P{n:04d}-{n + 1} a change, and X-1"]) == [f"P{n:04d}-{n + 1}"]
    assert _CountedProjects.reads <= 2, _CountedProjects.reads
