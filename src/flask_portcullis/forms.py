"""The sign-up form, shared by the pages and the JSON API (which checks a host's added
fields with it), and the base every page form builds on.

Field names are fixed by SPEC.md; every form carries ``csrf_token``. Only
shape checks live here (present, not absurdly long, confirmations match);
the password and identity rules live in the services, which report every
problem at once.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

# Far above any real value, far below anything that costs real work to hash or look up.
FIELD_MAX = 1024


class Form(FlaskForm):
    """A browser form: reads only url-encoded or multipart text fields.

    Flask-WTF would also read JSON bodies and uploaded files into the fields;
    neither is something a browser form sends, and both can carry values
    that are not strings. The JSON API is a separate adapter.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not args and "formdata" not in kwargs:
            kwargs["formdata"] = request.form if request.method == "POST" else None
        super().__init__(*args, **kwargs)


def required_field(label: str) -> list[object]:
    return [
        DataRequired(f"Enter your {label}."),
        Length(max=FIELD_MAX, message=f"Too long: at most {FIELD_MAX} characters."),
    ]


def new_password_rules() -> list[object]:
    # No length cap here: the password policy reports its own maximum, before any hashing.
    return [DataRequired("Choose a password.")]


class RegisterForm(Form):
    """The sign-up form. Subclass it to ask for more (``Portcullis(register_form=...)``):
    each added field needs a user column of the same name (see signup.py)."""

    username = StringField("Username", validators=required_field("username"))
    email = EmailField("Email address", validators=required_field("email address"))
    password = PasswordField("Password", validators=new_password_rules())
    password_confirm = PasswordField(
        "Repeat password",
        validators=[DataRequired("Repeat the password."), EqualTo("password", "Passwords differ.")],
    )
