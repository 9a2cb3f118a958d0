"""Portcullis's macro templates as objects the pages call, imported once per process.

A ``{% from "..." import m %}`` in a page costs Jinja a comparison of the
page's globals with the imported template's on every render (to decide
whether the import sees new globals), and the layout and the account page did
two on every signed-in page. The macros need no context (they read only the
``portcullis_*`` globals), so the pages call them through these objects
instead; a host's own layout still imports ``portcullis/macros.html``.
"""

from __future__ import annotations

from typing import Any

from flask import current_app


class Macros:
    """The macros of one template (``macros.account_nav()``), as its module exports them.

    Looked up on the app's Jinja environment at each call, so an app that
    overrides the template, or reloads templates in debug, gets its own.
    """

    def __init__(self, template: str) -> None:
        self._template = template

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(current_app.jinja_env.get_template(self._template).module, name)


PUBLIC = Macros("portcullis/macros.html")
PRIVATE = Macros("portcullis/_macros.html")
