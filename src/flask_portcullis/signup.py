"""A host's own sign-up fields: found on its register form, checked once against the user model.

A host subclasses :class:`~flask_portcullis.forms.RegisterForm`, adds WTForms
fields, and passes ``Portcullis(register_form=...)``. The fields the base form
lacks are the extra ones: the page draws and validates them, the JSON API
accepts them, and the new user row gets their values in the columns of the
same names. Only the host's own columns: a form field can never set what
Portcullis decides (``active``, the password hash, the verified date, the
keys), nor a relationship such as ``roles``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wtforms import (
    BooleanField,
    DecimalField,
    FloatField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.fields.core import UnboundField

from .exceptions import ConfigurationError
from .models import UserMixin, require_signup_columns

if TYPE_CHECKING:
    from .forms import RegisterForm

#: The field types a sign-up field may have, each with the JSON type the API takes for it.
#: First match wins (a SubmitField is a BooleanField, a SelectMultipleField a SelectField).
JSON_TYPES: tuple[tuple[type[Any], str | None], ...] = (
    (SubmitField, None),  # the page draws its own button
    (SelectMultipleField, None),  # a list: one column holds one value
    (BooleanField, "boolean"),
    (SelectField, "enum"),  # RadioField too
    (IntegerField, "integer"),
    (DecimalField, "number"),
    (FloatField, "number"),
    (StringField, "string"),  # TextAreaField, EmailField, TelField, URLField, ...
)


@dataclass(frozen=True)
class SignupFields:
    """The register form of one Portcullis object, and the names of its extra fields."""

    form: type[RegisterForm]
    names: tuple[str, ...]  # in the form's order


def json_type(field_class: type[Any]) -> str | None:
    """The JSON type the API takes for a field class ("enum" for a choice), or None."""
    return next((kind for base, kind in JSON_TYPES if issubclass(field_class, base)), None)


def form_fields(form: type[Any]) -> list[tuple[str, UnboundField[Any]]]:
    """The fields a WTForms form class declares, in their order, without binding them."""
    found = [
        (name, value)
        for name in dir(form)
        if not name.startswith("_") and isinstance(value := getattr(form, name), UnboundField)
    ]
    return sorted(found, key=lambda item: (item[1].creation_counter, item[0]))  # as WTForms


def require_signup_fields(
    form: type[RegisterForm] | None, user_model: type[UserMixin] | None
) -> SignupFields:
    """Return the form's extra fields, or raise ConfigurationError naming what to fix.

    ``user_model`` None is the built-in User, which has Portcullis's columns only.
    """
    from .forms import RegisterForm  # the web package imports the extension: not at the top

    if form is None:
        return SignupFields(RegisterForm, ())
    if not (isinstance(form, type) and issubclass(form, RegisterForm)):
        raise ConfigurationError(
            f"register_form={form!r} is not a form class based on "
            "flask_portcullis.RegisterForm: subclass it and add your fields."
        )
    base = {name for name, _ in form_fields(RegisterForm)}
    extra = [(name, field) for name, field in form_fields(form) if name not in base]
    missing = sorted(base - {name for name, _ in form_fields(form)})
    if missing:
        raise ConfigurationError(
            f"{form.__name__} removes the sign-up field(s) {', '.join(missing)}: "
            "Portcullis needs them; add fields beside them."
        )
    for name, field in extra:
        if issubclass(field.field_class, SubmitField):
            raise ConfigurationError(
                f"Remove {form.__name__}.{name}: the sign-up page draws its own button."
            )
        if json_type(field.field_class) is None:
            raise ConfigurationError(
                f"{form.__name__}.{name} is a {field.field_class.__name__}, which sign-up "
                "cannot store in one column. Use a text, number, boolean or single-choice field."
            )
    names = tuple(name for name, _ in extra)
    require_signup_columns(user_model, names, source=f"{form.__name__}'s field")
    return SignupFields(form, names)
