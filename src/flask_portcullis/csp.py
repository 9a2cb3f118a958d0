"""The Content-Security-Policy: Portcullis's strict default, and the sources a host adds.

Policy only, no HTTP: ``settings.py`` checks a host's additions with :func:`directive_problems`
at start-up, ``web/headers.py`` builds the header value with :func:`build` once.
Directive names and source syntax follow W3C Content Security Policy Level 3.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

Directives = tuple[tuple[str, tuple[str, ...]], ...]

DEFAULT: Directives = (
    ("default-src", ("'self'",)),
    ("script-src", ("'self'",)),  # no inline script anywhere (ASVS 14.4.3)
    ("style-src", ("'self'",)),
    ("img-src", ("'self'", "data:")),
    ("object-src", ("'none'",)),
    ("base-uri", ("'none'",)),
    ("form-action", ("'self'",)),
    ("frame-ancestors", ("'none'",)),
)

# A directive the default leaves out starts from the one the browser used for it until
# then (CSP3 6.8.3), so adding sources never takes any away: "connect-src" starts 'self'.
FALLBACK: dict[str, tuple[str, ...]] = {
    "script-src-elem": ("script-src",),
    "script-src-attr": ("script-src",),
    "style-src-elem": ("style-src",),
    "style-src-attr": ("style-src",),
    "child-src": ("default-src",),
    "connect-src": ("default-src",),
    "font-src": ("default-src",),
    "manifest-src": ("default-src",),
    "media-src": ("default-src",),
    "frame-src": ("child-src", "default-src"),
    "worker-src": ("child-src", "script-src", "default-src"),
}
# Every directive a host may add to, in the order they appear in the header after the
# default ones (a fallback before the directives that start from it). Not "sandbox" or
# "trusted-types": they take no sources, and would break the pages.
DIRECTIVES: tuple[str, ...] = (
    *(name for name, _ in DEFAULT),
    "script-src-elem",
    "script-src-attr",
    "style-src-elem",
    "style-src-attr",
    "child-src",
    "connect-src",
    "font-src",
    "manifest-src",
    "media-src",
    "frame-src",
    "worker-src",
    "report-uri",
    "report-to",
    "upgrade-insecure-requests",
)
SCRIPT_DIRECTIVES = ("script-src", "script-src-elem", "script-src-attr")
KEYWORDS = (
    "'self'",
    "'unsafe-inline'",
    "'unsafe-eval'",
    "'unsafe-hashes'",
    "'wasm-unsafe-eval'",
    "'strict-dynamic'",
    "'report-sample'",
)
HASH = re.compile(r"'sha(256|384|512)-[A-Za-z0-9+/_-]+={0,2}'")
# A host, scheme or URL: printable ASCII without the characters that end a source (space),
# a directive (;) or a policy (,), and without quotes (those are for keywords).
PLAIN = re.compile(r"[!-~]+")
SCHEME_ONLY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def build(extra: Iterable[tuple[str, Sequence[str]]] = ()) -> str:
    """Return the header value: the default with ``extra`` sources added per directive."""
    policy = {name: list(sources) for name, sources in DEFAULT}
    added = dict(extra)
    for name in sorted(added, key=DIRECTIVES.index):
        if name not in policy:
            start = next((policy[f] for f in FALLBACK.get(name, ()) if f in policy), [])
            policy[name] = list(start)
        sources = policy[name]
        if sources == ["'none'"] and added[name]:
            sources.clear()  # 'none' next to a source would be ignored, or worse, misread
        sources.extend(s for s in dict.fromkeys(added[name]) if s not in sources)
    return "; ".join(" ".join([name, *sources]) for name, sources in policy.items())


def directive_problems(key: str, extra: Iterable[tuple[str, Any]]) -> list[str]:
    """Return what is wrong with the additions ``extra`` (given under config ``key``)."""
    found: list[str] = []
    for name, sources in extra:
        where = f"{key}[{name!r}]"
        if name not in DIRECTIVES:
            found.append(
                f"{key}: unknown or unsupported directive {name!r}; use one of "
                + ", ".join(DIRECTIVES)
                + "."
            )
            continue
        if not isinstance(sources, tuple) or not all(isinstance(s, str) for s in sources):
            found.append(f'{where} must be a list of sources, e.g. ["https://cdn.example.com"].')
            continue
        if name == "upgrade-insecure-requests":
            if sources:
                found.append(f"{where} takes no sources: give an empty list.")
            continue
        if not sources:
            found.append(f"{where} lists no source: give at least one, or leave it out.")
        found.extend(f"{where}: {why}" for s in sources if (why := _source_problem(name, s)))
    return found


def _source_problem(directive: str, source: str) -> str | None:
    """Say why ``source`` cannot be added to ``directive``, or return None when it can."""
    if source == "'none'":
        return "'none' cannot be added: this setting only adds sources."
    if source.startswith("'"):
        if source in KEYWORDS or HASH.fullmatch(source):
            pass
        elif source.startswith("'nonce-"):
            return f"{source} is a fixed nonce, which protects nothing: nonces are per response."
        else:
            return f"{source} is not a CSP keyword or hash (keywords: {', '.join(KEYWORDS)})."
    elif not PLAIN.fullmatch(source) or any(ch in source for ch in ";,'"):
        return (
            f"{source!r} is not one source: no spaces, ';', ',' or quotes (list each source "
            "separately)."
        )
    elif f"'{source.lower()}'" in (*KEYWORDS, "'none'"):
        return f"keywords take single quotes: write \"'{source.lower()}'\", not {source!r}."
    # The strict script policy is what stops injected markup from running (ASVS 14.4.3):
    # each of these would let it run again, on the sign-in pages too.
    if directive in SCRIPT_DIRECTIVES and (
        source in ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*")
        or SCHEME_ONLY.fullmatch(source)
    ):
        return (
            f"{source} is refused in {directive}: it would let injected markup run script. "
            "Keep inline script off Portcullis's pages; if your own pages need it, set "
            'PORTCULLIS_SECURITY_HEADERS to "portcullis" and give them a policy of their own.'
        )
    return None
