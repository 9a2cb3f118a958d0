"""The layout's links, built once: ``url_for`` costs a route-map walk each time, and the
navigation asks for the same few on every page."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask import request, url_for


def cached_url_for(endpoint: str, **values: str) -> str:
    """``url_for`` for a path inside this app (never external), remembered per mount point.

    Only for links whose values come from the templates themselves (a file name,
    never a visitor's input): the cache holds at most 256 of them.
    """
    return _built(request.script_root, endpoint, tuple(sorted(values.items())))


@lru_cache(maxsize=256)
def _built(script_root: str, endpoint: str, values: tuple[tuple[str, str], ...]) -> str:
    del script_root  # part of the key only: url_for reads it from the request
    built: dict[str, Any] = dict(values)
    return url_for(endpoint, **built)
