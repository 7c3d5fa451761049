"""Security scan results: Veracode Pipeline Scan `results.json` and SourceClear / Veracode SCA
JSON (`srcclr scan --json`), read into plain records (field paths: shared/specs/FORMATS.md)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devex_cli.errors import InputError

# Veracode's severities, 5 (worst) to 0.
SEVERITIES = {5: "Very High", 4: "High", 3: "Medium", 2: "Low", 1: "Very Low", 0: "Informational"}
# CVSS bands devex uses for SCA (NVD's v3 ratings).
CVSS_BANDS = (("critical", 9.0), ("high", 7.0), ("medium", 4.0), ("low", 0.1), ("none", 0.0))


@dataclass(frozen=True)
class Finding:
    severity: int
    title: str
    cwe: str | None
    file: str | None
    line: int | None


@dataclass(frozen=True)
class Vulnerability:
    cve: str | None
    title: str
    cvss: float | None
    library: str | None
    version: str | None
    fix: str | None

    @property
    def band(self) -> str:
        return cvss_band(self.cvss)


@dataclass(frozen=True)
class SecurityReport:
    findings: tuple[Finding, ...] = ()
    vulnerabilities: tuple[Vulnerability, ...] = ()
    sources: tuple[str, ...] = field(default=())
    static_scanned: bool = False  # a Veracode Pipeline Scan was read
    sca_scanned: bool = False  # an SCA scan was read

    def findings_by_severity(self) -> dict[int, int]:
        counts = dict.fromkeys(SEVERITIES, 0)
        for finding in self.findings:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
        return counts

    def vulnerabilities_by_band(self) -> dict[str, int]:
        counts = {band: 0 for band, _ in CVSS_BANDS}
        for vulnerability in self.vulnerabilities:
            counts[vulnerability.band] += 1
        return counts

    @property
    def worst_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (-f.severity, f.file or "", f.line or 0))

    @property
    def worst_vulnerabilities(self) -> list[Vulnerability]:
        return sorted(self.vulnerabilities, key=lambda v: (-(v.cvss or 0.0), v.cve or ""))


def cvss_band(score: float | None) -> str:
    if score is None:
        return "none"
    for band, floor in CVSS_BANDS:
        if score >= floor:
            return band
    return "none"


class _NotANumber(ValueError):
    """NaN, Infinity or a number past a float's range (1e400): not JSON a scanner writes."""


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotANumber(text)
    return number


def _no_constant(text: str) -> float:
    raise _NotANumber(text)


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_float=_finite,
                          parse_constant=_no_constant)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except _NotANumber as exc:
        raise InputError(f"{path} is not valid JSON: {exc} is not a finite number") from None
    except RecursionError:  # json recurses once per level: `[[[[...` 100,000 deep
        raise InputError(f"{path} is not a scan: its JSON is nested too deeply") from None


def parse_veracode(path: Path) -> tuple[Finding, ...]:
    """Findings of a Pipeline Scan results.json. Raises InputError on another shape."""
    data = _load(path)
    if not isinstance(data, dict) or not isinstance(data.get("findings", []), list):
        raise InputError(f"{path} is not a Veracode Pipeline Scan results.json "
                         "(no 'findings' list)")
    findings = []
    for n, item in enumerate(data.get("findings") or []):
        try:
            source = ((item.get("files") or {}).get("source_file") or {})
            severity = int(item["severity"])
            if severity not in SEVERITIES:
                raise ValueError(severity)
            line = source.get("line")
            findings.append(Finding(
                severity=severity,
                title=str(item.get("issue_type") or item.get("title") or "finding"),
                cwe=str(item["cwe_id"]) if item.get("cwe_id") not in (None, "") else None,
                file=str(source["file"]) if source.get("file") else None,
                line=int(line) if line not in (None, "") else None,
            ))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            raise InputError(f"{path}: finding {n} has no readable severity (0-5) or line") \
                from None
    return tuple(findings)


def parse_sca(path: Path) -> tuple[Vulnerability, ...]:
    """Vulnerabilities of an SCA (SourceClear) JSON scan. Raises InputError on another shape."""
    data = _load(path)
    try:
        record = data["records"][0]
        libraries = record.get("libraries") or []
        items = record.get("vulnerabilities") or []
    except (KeyError, IndexError, TypeError, AttributeError):
        raise InputError(f"{path} is not an SCA / SourceClear JSON scan "
                         "(no 'records[0]')") from None
    vulnerabilities = []
    for n, item in enumerate(items):
        try:
            cve = str(item.get("cve") or "")
            score = item.get("cvss3Score", item.get("cvssScore"))
            library, version, fix = _library(item, libraries)
            vulnerabilities.append(Vulnerability(
                cve=None if not cve or "null" in cve else
                (cve if cve.upper().startswith("CVE-") else f"CVE-{cve}"),
                title=str(item.get("title") or "vulnerability"),
                cvss=_score(score),
                library=library, version=version, fix=fix,
            ))
        except (TypeError, ValueError, AttributeError):
            raise InputError(f"{path}: vulnerability {n} cannot be read") from None
    return tuple(vulnerabilities)


def _score(value: object) -> float | None:
    """A CVSS score; None (unknown, shown as `-`) for none, or for one such as "nan" that no
    card or metric should show."""
    if value in (None, ""):
        return None
    score = float(value)  # type: ignore[arg-type]  # TypeError/ValueError: the caller's
    return score if math.isfinite(score) else None


def _library(item: dict[str, Any], libraries: list[Any]) -> tuple[str | None, str | None,
                                                                   str | None]:
    for reference in item.get("libraries") or []:
        details = (reference.get("details") or [{}])[0]
        fix = details.get("updateToVersion") or None
        link = str(((reference.get("_links") or {}).get("ref")) or "")
        parts = link.strip("/").split("/")  # records/0/libraries/<i>/versions/<j>
        try:
            library = libraries[int(parts[3])]
            version = library.get("versions", [])[int(parts[5])].get("version")
            name = library.get("name") or ":".join(
                x for x in (library.get("coordinate1"), library.get("coordinate2")) if x)
            return str(name), str(version) if version else None, fix
        except (IndexError, ValueError, AttributeError):
            return None, None, fix
    return None, None, None


def read_security(veracode: Path | None, sca: Path | None) -> SecurityReport:
    if veracode is None and sca is None:
        raise InputError("no scan given", hint="pass --veracode results.json and/or --sca FILE")
    return SecurityReport(
        findings=parse_veracode(veracode) if veracode else (),
        vulnerabilities=parse_sca(sca) if sca else (),
        sources=tuple(str(p) for p in (veracode, sca) if p),
        static_scanned=veracode is not None,
        sca_scanned=sca is not None,
    )
