"""Accounts by Portcullis: the app's own User, and one more field on the sign-up form."""

from __future__ import annotations

from wtforms import StringField
from wtforms.validators import DataRequired, Length

from flask_portcullis import Portcullis, RegisterForm

from . import db
from .models import User


class SignUpForm(RegisterForm):
    display_name = StringField(
        "Display name",
        validators=[DataRequired("Choose a display name."), Length(max=80)],
    )


portcullis = Portcullis(db=db, user_model=User, register_form=SignUpForm)
