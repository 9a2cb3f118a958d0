"""Turn service errors into messages next to the form fields they concern."""

from __future__ import annotations

from flask import Response, make_response, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from ..exceptions import FieldError, PasswordRejected, PortcullisError, TokenExpired, TokenInvalid


def show_error(
    form: FlaskForm, error: PortcullisError, *, password_field: str = "password"
) -> None:
    """Attach ``error`` to the field it names, or to the form as a whole."""
    if isinstance(error, PasswordRejected):
        _field_errors(form, password_field).extend(error.reasons)
    elif isinstance(error, FieldError) and error.field in form:
        _field_errors(form, error.field).append(error.message)
    else:
        form.form_errors.append(str(error))


def render_form(template: str, form: FlaskForm, **context: object) -> ResponseReturnValue:
    """Render a form page; a submitted form with errors answers 422."""
    status = 422 if request.method == "POST" else 200
    return render_template(template, form=form, **context), status


def _field_errors(form: FlaskForm, name: str) -> list[str]:
    field = form[name]
    # WTForms leaves errors as a tuple until validation has run on the field.
    if not isinstance(field.errors, list):
        field.errors = list(field.errors)
    return field.errors


# The words of every page that asks for the current password again.
WRONG_PASSWORD = "That is not your current password."


def no_referrer(response: ResponseReturnValue) -> Response:
    """A page whose address holds a token: no Referer header may carry it elsewhere."""
    response = make_response(response)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def link_problem(error: TokenInvalid, *, again: str, again_label: str) -> Response:
    """The page of a link that cannot be used: 410 when it expired, else 400."""
    expired = isinstance(error, TokenExpired)
    page = render_template(
        "portcullis/link_invalid.html",
        expired=expired,
        message=str(error),
        again=again,
        again_label=again_label,
    )
    return no_referrer((page, 410 if expired else 400))
