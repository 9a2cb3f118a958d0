"""Request and response bodies of the JSON API.

These pydantic models both validate requests and generate the OpenAPI
document (``openapi.py``), so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# Far above any real value, far below anything costly (the services apply the real rules).
Text = Annotated[str, Field(max_length=1024)]
Password = Annotated[str, Field(max_length=4096)]
Token = Annotated[str, Field(min_length=1, max_length=2048)]


class Body(BaseModel):
    """Requests: JSON objects with exactly these fields, of exactly these types."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Register(Body):
    username: Text = Field(examples=["ada"])
    email: Text = Field(examples=["ada@example.com"])
    password: Password = Field(examples=["correct horse battery staple"])


DeviceToken = Annotated[str, Field(min_length=1, max_length=256)]
DEVICE_TOKEN = (
    "The `device_token` an earlier sign-in of this client to this account returned. With "
    "it, this client's attempts have their own budget: failures from elsewhere neither "
    "delay nor lock it. Any other value is ignored."
)


class Login(Body):
    identity: Text = Field(description="Username or email address.", examples=["ada"])
    password: Password = Field(examples=["correct horse battery staple"])
    device_token: DeviceToken | None = Field(default=None, description=DEVICE_TOKEN)


class RefreshTokenBody(Body):
    refresh_token: Token


class ChangePassword(Body):
    current_password: Password
    new_password: Password


class ChangeEmail(Body):
    password: Password = Field(description="The current password.")
    email: Text = Field(description="The new address.", examples=["ada@example.org"])


class PasswordBody(Body):
    password: Password = Field(description="The current password.")


class EmailBody(Body):
    email: Text = Field(examples=["ada@example.com"])


class TokenBody(Body):
    token: Token = Field(description="The token from the emailed link.")


class ResetPassword(Body):
    token: Token = Field(description="The token from the emailed link.")
    password: Password


class TwoFactorStep(Body):
    challenge: Token = Field(description="From the 202 answer of /login.")
    code: Annotated[str, Field(max_length=64)] = Field(
        description="A 6-digit TOTP code or a recovery code.", examples=["123456"]
    )
    device_token: DeviceToken | None = Field(default=None, description=DEVICE_TOKEN)


class TwoFactorChallenge(BaseModel):
    """The password was right; the account has a second factor."""

    challenge: str = Field(description="Send it with the code to /login/two-factor.")
    expires_in: int = Field(examples=[300])
    detail: str


class TokenPair(BaseModel):
    access_token: str = Field(description="A JWT; send it as `Authorization: Bearer ...`.")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires.", examples=[900])
    refresh_token: str = Field(description="Single use: each refresh returns the next one.")


class SignedIn(TokenPair):
    """A completed sign-in: the tokens, and this client's trusted-device token."""

    device_token: str = Field(
        description="Keep it (a secret, like the refresh token) and send it with this "
        "account's next sign-ins: it spares this client the lockouts others cause."
    )


class User(BaseModel):
    id: int
    username: str
    email: str
    email_verified: bool
    created_at: datetime
    roles: list[str]


class Session(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    ip: str
    user_agent: str
    current: bool = Field(description="The session of the access token used for this request.")


class Sessions(BaseModel):
    sessions: list[Session]


class Accepted(BaseModel):
    detail: str


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable machine-readable ``code``."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    code: str = Field(examples=["invalid_credentials"])
    errors: list[FieldProblem] = Field(default_factory=list)
