"""``flask portcullis doctor`` run on an app and its output parsed line by line, checked
against the checklist (every item once, each with its standard, the summary agreeing)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Flask

# Every item the checklist covers, and the standard each one cites.
STANDARDS = {
    "secret key": "OWASP ASVS 6.4.1",
    "debug mode": "OWASP ASVS 14.3.2",
    "Secure cookies": "OWASP ASVS 3.4.1",
    "HttpOnly cookies": "OWASP ASVS 3.4.2",
    "SameSite cookies": "OWASP ASVS 3.4.3",
    "password hashing": "OWASP ASVS 2.4.1 / Password Storage Cheat Sheet",
    "rate limits": "OWASP ASVS 2.2.1 / NIST SP 800-63B 5.2.2",
    "shared limits": "OWASP ASVS 2.2.1",
    "session timeouts": "OWASP ASVS 3.3.2",
    "email verification": "NIST SP 800-63B 6.1.2.3",
    "mail delivery": "OWASP ASVS 2.5.1",
    "security headers": "OWASP ASVS 14.4",
    "links in mail": "OWASP ASVS 9.1.1",
    "host of links": "OWASP WSTG-INPV-17",
    "passkey site": "WebAuthn Level 3, 5.1.3",
    "database": "operations",
    "session store": "operations",
    "look-alike usernames": "Unicode UTS #39",
    "adopted duplicates": "RFC 8265 / docs/adopting.md",
}
# "FAIL  secret key        SECRET_KEY is short ...  [OWASP ASVS 6.4.1]"
FINDING = re.compile(r"^(PASS|WARN|FAIL)  (\S+(?: \S+)*) {2,}(.*\S)  \[([^\]]+)\]$")
SUMMARY = re.compile(r"^(\d+) passed, (\d+) warnings, (\d+) failed$")


@dataclass(frozen=True)
class Line:
    status: str
    message: str
    standard: str


@dataclass(frozen=True)
class Report:
    exit_code: int
    findings: dict[str, Line]
    summary: tuple[int, int, int]
    output: str

    def items(self, status: str) -> set[str]:
        return {item for item, line in self.findings.items() if line.status == status}


def run_doctor(app: Flask) -> Report:
    """Run ``flask portcullis doctor`` on ``app`` and parse what it printed."""
    result = app.test_cli_runner().invoke(args=["portcullis", "doctor"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    findings: dict[str, Line] = {}
    summary: tuple[int, int, int] | None = None
    for raw in result.stdout.splitlines():
        if match := FINDING.match(raw):
            status, item, message, standard = match.groups()
            assert item not in findings, f"{item!r} reported twice:\n{result.stdout}"
            findings[item] = Line(status, message, standard)
        elif match := SUMMARY.match(raw):
            passed, warned, failed = (int(group) for group in match.groups())
            summary = (passed, warned, failed)
    assert summary is not None, f"no summary line in:\n{result.stdout}"
    report = Report(result.exit_code, findings, summary, result.stdout)
    assert set(findings) == set(STANDARDS), f"items differ from the checklist:\n{result.stdout}"
    counted = (len(report.items("PASS")), len(report.items("WARN")), len(report.items("FAIL")))
    assert summary == counted, f"summary disagrees with the lines:\n{result.stdout}"
    for item, line in findings.items():
        assert line.standard == STANDARDS[item], (item, line)
    return report
