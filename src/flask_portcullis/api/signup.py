"""The host's sign-up fields in the JSON API (see ``flask_portcullis.signup``).

Each register form gets its own ``Register`` body model: the base one plus a
property per extra field, typed after the WTForms field. It checks the JSON
types strictly and still refuses unknown keys, and the OpenAPI document is
built from it, so the two agree. The values then go through the form's own
field validators (inline ``validate_<name>`` methods too), exactly as on the
page, and come out converted as the page would store them.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, Field, create_model
from pydantic.fields import FieldInfo
from werkzeug.datastructures import MultiDict
from wtforms import Field as FormField
from wtforms import SelectField
from wtforms.validators import Length

from ..exceptions import ConfigurationError
from ..forms import FIELD_MAX
from ..signup import SignupFields, json_type
from ..state import get_state
from . import schemas
from .problems import BadBody

INVALID = "Some fields are missing or wrong."


def app_body(model: type[BaseModel]) -> type[BaseModel]:
    """This app's version of a request body: ``Register`` grows the host's sign-up fields.

    ``api_bp`` and the endpoint registry serve every app in the process; the
    fields are per app, so both the parsing and the document ask here.
    """
    if model is schemas.Register:
        return register_body(get_state().signup)
    return model


@cache
def register_body(signup: SignupFields) -> type[schemas.Register]:
    """The ``Register`` body with a property per extra field (the base model when none)."""
    if not signup.names:
        return schemas.Register
    form = signup.form(formdata=None, meta={"csrf": False})
    properties: dict[str, Any] = {name: _property(form[name]) for name in signup.names}
    return create_model(  # named Register: the document's schema keeps its name
        "Register", __base__=schemas.Register, __module__=schemas.__name__, **properties
    )


def _property(field: FormField) -> tuple[Any, FieldInfo]:
    """The annotation and pydantic field of one form field (validators stay WTForms')."""
    kind = json_type(type(field))
    annotation: Any
    if kind == "boolean":
        annotation = bool
    elif kind == "integer":
        annotation = int
    elif kind == "number":
        annotation = Annotated[float, Field(allow_inf_nan=False)]  # Python's json reads NaN
    elif kind == "enum":
        values = tuple(choice[0] for choice in cast(SelectField, field).iter_choices())
        if not values:
            raise ConfigurationError(
                f"Sign-up field {field.name!r} has no choices: give them in the form class."
            )
        annotation = Literal[values]
    else:  # a string; capped as every API text is (schemas.Text), and by its Length
        lengths = [cast(Length, v).max for v in field.validators if isinstance(v, Length)]
        limit = min([FIELD_MAX, *(n for n in lengths if n >= 0)])
        annotation = Annotated[str, Field(max_length=limit)]
    options: dict[str, Any] = {"title": str(field.label.text)}
    if field.description:
        options["description"] = str(field.description)
    # DataRequired or InputRequired; a select that checks its choice refuses no choice too.
    if field.flags.required or (isinstance(field, SelectField) and field.validate_choice):
        return annotation, Field(**options)
    # Optional: absent is fine, null is not (a JSON client leaves the key out).
    return annotation, Field(default=None, json_schema_extra=_without_default, **options)


def _without_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # None is no value of the field's type


def extra_values(signup: SignupFields, data: BaseModel) -> dict[str, Any]:
    """Validate the host's fields of a register body with the form's validators; return
    their values as the page would store them, or raise BadBody (422) naming each field."""
    if not signup.names:
        return {}
    formdata: MultiDict[str, str] = MultiDict()
    for name, value in data.model_dump(include=set(signup.names), exclude_none=True).items():
        if value is True:
            formdata.add(name, "y")  # what a checked box sends
        elif value is not False:  # an unchecked box sends nothing
            formdata.add(name, str(value))
    form = signup.form(formdata=formdata, meta={"csrf": False})
    errors: list[dict[str, str]] = []
    for name in signup.names:
        field = form[name]
        inline = getattr(type(form), f"validate_{name}", None)  # as Form.validate finds them
        if not field.validate(form, [inline] if inline is not None else []):
            errors.extend({"field": name, "message": str(error)} for error in field.errors)
    if errors:
        raise BadBody(422, INVALID, errors)
    return {name: form[name].data for name in signup.names}
