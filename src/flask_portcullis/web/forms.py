"""The pages' Flask-WTF forms (sign-up's is in ``flask_portcullis.forms``, shared with the API).

Only shape checks live here (present, not absurdly long, confirmations match);
the password and identity rules live in the services, which report every
problem at once.
"""

from __future__ import annotations

from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import DataRequired, EqualTo, Length

from ..forms import Form, new_password_rules, required_field
from ..passkeys import CREDENTIAL_JSON_MAX, NAME_MAX


class LoginForm(Form):
    identity = StringField("Username or email", validators=required_field("username or email"))
    password = PasswordField("Password", validators=required_field("password"))
    remember = BooleanField("Keep me signed in on this device")


class ConfirmForm(Form):
    """A button and a CSRF token: sign out, end a session."""


class ChangePasswordForm(Form):
    current_password = PasswordField(
        "Current password", validators=required_field("current password")
    )
    new_password = PasswordField("New password", validators=new_password_rules())
    new_password_confirm = PasswordField(
        "Repeat new password",
        validators=[
            DataRequired("Repeat the new password."),
            EqualTo("new_password", "Passwords differ."),
        ],
    )


class DeleteAccountForm(Form):
    password = PasswordField("Password", validators=required_field("password"))


class ForgotPasswordForm(Form):
    email = EmailField("Email address", validators=required_field("email address"))


class ResetPasswordForm(Form):
    password = PasswordField("New password", validators=new_password_rules())
    password_confirm = PasswordField(
        "Repeat new password",
        validators=[DataRequired("Repeat the password."), EqualTo("password", "Passwords differ.")],
    )


class ChangeEmailForm(Form):
    email = EmailField("New email address", validators=required_field("new email address"))
    password = PasswordField("Current password", validators=required_field("current password"))


class CodeForm(Form):
    code = StringField(
        "Code",
        validators=[DataRequired("Enter the code."), Length(max=64, message="Too long.")],
    )


class PasswordConfirmForm(Form):
    password = PasswordField("Your password", validators=required_field("password"))


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
    password = PasswordField("Current password", validators=required_field("current password"))


class ProviderForm(Form):
    """The button that sends the browser to a sign-in provider: what for, and a CSRF token
    (a sign-in started by another site's page would sign you in to their account)."""

    intent = HiddenField(default="sign-in")


class ProviderSignupForm(Form):
    """A new person arriving from a provider: their username (suggested) and address."""

    username = StringField("Username", validators=required_field("username"))
    email = EmailField("Email address", validators=required_field("email address"))


class UnlinkForm(Form):
    provider = HiddenField(validators=[DataRequired(), Length(max=32)])


class InviteForm(Form):
    email = EmailField("Email address", validators=required_field("email address"))
    roles = SelectMultipleField("Roles", choices=[], validate_choice=True)


class AcceptInvitationForm(Form):
    username = StringField("Username", validators=required_field("username"))
    password = PasswordField("Password", validators=new_password_rules())
    password_confirm = PasswordField(
        "Repeat password",
        validators=[DataRequired("Repeat the password."), EqualTo("password", "Passwords differ.")],
    )
