"""``next`` is honoured only for same-site relative paths (OWASP ASVS 5.1.5)."""

from __future__ import annotations

import pytest

from flask_portcullis.web.redirects import safe_next


@pytest.mark.parametrize("target", ["/", "/account", "/account?tab=2#x", "/a/b/c?next=//x"])
def test_same_site_paths_are_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "https://evil.example/",
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "account",
        " /account",
        "/acc\tount",
        "/\x00",
        "http:/evil.example",
        "/" + "a" * 3000,
    ],
)
def test_everything_else_is_refused(target: str | None) -> None:
    assert safe_next(target) is None
