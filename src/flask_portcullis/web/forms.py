"""Flask-WTF forms: field names are fixed by SPEC.md; every form carries ``csrf_token``.

Only shape checks live here (present, not absurdly long, confirmations match);
the password and identity rules live in the services, which report every
problem at once.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from ..passkeys import CREDENTIAL_JSON_MAX, NAME_MAX

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


def _required(label: str) -> list[object]:
    return [
        DataRequired(f"Enter your {label}."),
        Length(max=FIELD_MAX, message=f"Too long: at most {FIELD_MAX} characters."),
    ]


def _new_password() -> list[object]:
    # No length cap here: the password policy reports its own maximum, before any hashing.
    return [DataRequired("Choose a password.")]


class RegisterForm(Form):
    """The sign-up form. Subclass it to ask for more (``Portcullis(register_form=...)``):
    each added field needs a user column of the same name (see signup.py)."""

    username = StringField("Username", validators=_required("username"))
    email = EmailField("Email address", validators=_required("email address"))
    password = PasswordField("Password", validators=_new_password())
    password_confirm = PasswordField(
        "Repeat password",
        validators=[DataRequired("Repeat the password."), EqualTo("password", "Passwords differ.")],
    )


class LoginForm(Form):
    identity = StringField("Username or email", validators=_required("username or email"))
    password = PasswordField("Password", validators=_required("password"))
    remember = BooleanField("Keep me signed in on this device")


class ConfirmForm(Form):
    """A button and a CSRF token: sign out, end a session."""


class ChangePasswordForm(Form):
    current_password = PasswordField("Current password", validators=_required("current password"))
    new_password = PasswordField("New password", validators=_new_password())
    new_password_confirm = PasswordField(
        "Repeat new password",
        validators=[
            DataRequired("Repeat the new password."),
            EqualTo("new_password", "Passwords differ."),
        ],
    )


class DeleteAccountForm(Form):
    password = PasswordField("Password", validators=_required("password"))


class ForgotPasswordForm(Form):
    email = EmailField("Email address", validators=_required("email address"))


class ResetPasswordForm(Form):
    password = PasswordField("New password", validators=_new_password())
    password_confirm = PasswordField(
        "Repeat new password",
        validators=[DataRequired("Repeat the password."), EqualTo("password", "Passwords differ.")],
    )


class ChangeEmailForm(Form):
    email = EmailField("New email address", validators=_required("new email address"))
    password = PasswordField("Current password", validators=_required("current password"))


class CodeForm(Form):
    code = StringField(
        "Code",
        validators=[DataRequired("Enter the code."), Length(max=64, message="Too long.")],
    )


class PasswordConfirmForm(Form):
    password = PasswordField("Your password", validators=_required("password"))


class PasskeyForm(Form):
    """The browser's WebAuthn answer, as JSON, put into a hidden field by passkeys.js."""

    credential = HiddenField(
        validators=[
            DataRequired("The passkey gave no answer; try again."),
            Length(max=CREDENTIAL_JSON_MAX, message="The passkey's answer was too long."),
        ]
    )


class AddPasskeyForm(PasskeyForm):
    name = StringField(
        "Name",
        validators=[
            DataRequired("Give the passkey a name."),
            Length(max=NAME_MAX, message="Too long."),
        ],
    )
    password = PasswordField("Current password", validators=_required("current password"))
