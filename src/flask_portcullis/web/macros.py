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
from weakref import WeakKeyDictionary

from flask import current_app
from jinja2 import Environment, Template


class Macros:
    """The macros of one template (``macros.account_nav()``), as its module exports them.

    The template comes from the app's Jinja environment, so an app that overrides it
    gets its own; it is looked up once per environment, and again only when Jinja
    reloads templates (``TEMPLATES_AUTO_RELOAD``, debug) and the file changed.
    """

    def __init__(self, template: str) -> None:
        self._template = template
        self._loaded: WeakKeyDictionary[Environment, Template] = WeakKeyDictionary()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        environment = current_app.jinja_env
        template = self._loaded.get(environment)
        if template is None or (environment.auto_reload and not template.is_up_to_date):
            template = self._loaded[environment] = environment.get_template(self._template)
        return getattr(template.module, name)


PUBLIC = Macros("portcullis/macros.html")
PRIVATE = Macros("portcullis/_macros.html")
