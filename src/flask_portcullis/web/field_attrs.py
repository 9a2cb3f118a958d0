"""A field's ``render_kw`` in the pages' ``field`` macro (templates/portcullis/_macros.html).

The macro always owns the attributes that tie a control to its label, hint
and errors (``id``, ``name``, ``aria-invalid``, ``aria-describedby``: set or
left out by the field's state, never by ``render_kw``) and those the data
decides (``type``, ``value``, ``checked``); the ones the page asks for
(``autocomplete``, ``autofocus``, ``required``, ``maxlength``) win when it sets
them. A field's ``render_kw`` adds anything else (``placeholder``,
``inputmode``, ``class``, ``data-*``, ``aria-label``, an ``autocomplete`` the
page leaves unset...). So a ``render_kw`` cannot unhook a field from its label
or its errors, nor call a valid field invalid (WCAG 1.3.1, 3.3.1, 4.1.2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup
from wtforms import Field
from wtforms.widgets import html_params

# Never taken from render_kw, whether or not the macro writes them this time.
MACRO_OWNED = frozenset(
    {"id", "name", "type", "value", "checked", "aria-invalid", "aria-describedby"}
)
ATTRIBUTE_NAME = re.compile(r"[A-Za-z_:][-A-Za-z0-9_:.]*\Z")


def html_name(key: str) -> str:
    """The attribute a keyword names, as WTForms reads it: ``class_`` is ``class``,
    ``data_user_id`` is ``data-user-id``, ``aria_label`` is ``aria-label``."""
    key = key.rstrip("_")
    if key.startswith(("data_", "aria_")):
        key = key.replace("_", "-")
    if not ATTRIBUTE_NAME.match(key):
        raise ValueError(f"render_kw key {key!r} is not an HTML attribute name.")
    return key


def _set(own: Mapping[str, Any]) -> dict[str, Any]:
    """The macro's own attributes that it writes this time (False, None and "" are unset)."""
    return {html_name(k): v for k, v in own.items() if v is not None and v is not False and v != ""}


def _from_render_kw(field: Field, taken: set[str]) -> dict[str, Any]:
    render_kw: Mapping[str, Any] = getattr(field, "render_kw", None) or {}
    found = {html_name(k): v for k, v in render_kw.items()}
    return {
        name: value
        for name, value in found.items()
        if name not in taken | MACRO_OWNED and value is not None and value is not False
    }


def render_kw_attributes(field: Field, **own: Any) -> Markup:
    """The field's render_kw attributes the macro does not own, escaped, for an element the
    macro builds by hand: each after a space, or nothing. ``own`` are the attributes the
    macro writes, with the values it gives them (unset ones are left out)."""
    extra = _from_render_kw(field, set(_set(own)))
    return Markup(" ") + html_params(**extra) if extra else Markup("")


def widget_attributes(field: Field, **own: Any) -> dict[str, Any]:
    """The keywords for the field's own WTForms widget (a select, a text area): render_kw,
    then the macro's attributes on top. The widget is called with these directly, since
    calling the field would merge render_kw again, its ``id`` and ``name`` included."""
    mine = _set(own)
    return {**_from_render_kw(field, set(mine)), **mine}
