"""The JSON API: the same services as the HTML pages, behind bearer tokens instead of cookies.

No view here reads the session cookie or ``current_user``: a browser's
sign-in never authorises an API call, so the API needs no CSRF token, and
an API token never signs a browser in.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue

from ..authentication import TWO_FACTOR_WINDOW
from ..devices import API
from ..exceptions import (
    FieldError,
    InvalidCredentials,
    NotFound,
    PasswordRejected,
    TokenInvalid,
)
from ..identity import mask_email
from ..models import SignedInUser, UserMixin, entity
from ..state import State, get_state
from ..usecases import passwords, self_service, signin, signup
from . import schemas
from .endpoints import endpoint
from .events import client
from .problems import Unauthorized
from .signup import extra_values

AUTH_ERRORS = (401,)
WRONG_PASSWORD = "That is not your current password."
CHECK_INBOX = "Check your inbox: follow the link we sent to confirm the address, then sign in."


def bearer() -> tuple[SignedInUser, dict[str, Any]]:
    """The user and claims of this request's access token, or raise Unauthorized."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send an access token: Authorization: Bearer <token>.", invalid=False)
    state = get_state()
    try:
        claims = state.access_tokens.verify(token.strip())
    except TokenInvalid as exc:
        raise Unauthorized(str(exc), invalid=True) from exc
    subject = str(claims["sub"])
    user = None
    if re.fullmatch(r"[0-9]{1,18}", subject):
        user = state.sessions.user(int(subject))
    if user is None or not user.active:
        raise Unauthorized("The account of this token is not available.", invalid=True)
    return user, claims


def token_pair(state: State, user_id: int, session: str, refresh_token: str) -> Response:
    pair = schemas.TokenPair(
        access_token=state.access_tokens.issue(user_id, session),
        expires_in=state.access_tokens.lifetime,
        refresh_token=refresh_token,
    )
    return jsonify(pair.model_dump())


def presented(device_token: str | None) -> list[str]:
    return [device_token] if device_token else []


def user_body(user: UserMixin | SignedInUser) -> dict[str, Any]:
    return schemas.User(
        id=user.id,
        username=user.username,
        email=user.email,
        email_verified=user.email_verified,
        created_at=user.created_at,
        roles=sorted(role.name for role in user.roles),
    ).model_dump(mode="json")


def accepted(detail: str) -> tuple[Response, int]:
    return jsonify(schemas.Accepted(detail=detail).model_dump()), 202


@endpoint(
    "/register",
    "POST",
    summary="Create an account (and send the verification mail)",
    body=schemas.Register,
    response=schemas.User,
    status=201,
    errors=(404, 409, 422, 429),
    others=((202, schemas.Accepted),),
)
def register(data: schemas.Register) -> tuple[Response, int]:
    """201 with the account; with verification required, 202 for a new and a taken address
    alike (the owner of a taken one is mailed instead), so nobody learns who has an account.
    The body may carry the host's sign-up fields too (``Portcullis(register_form=...)``)."""
    state = get_state()
    extra = extra_values(state.signup, data)  # the form's validators, as on the page
    outcome = signup.sign_up(state, client(), data.username, data.email, data.password, extra)
    if outcome.user is None or state.settings.email_verification == "required":
        return accepted(CHECK_INBOX)
    return jsonify(user_body(outcome.user)), 201


@endpoint(
    "/login",
    "POST",
    summary="Sign in: tokens, or (202) a challenge for the second factor",
    body=schemas.Login,
    response=schemas.SignedIn,
    errors=(401, 403, 429),
    others=((202, schemas.TwoFactorChallenge),),
)
def login(data: schemas.Login) -> ResponseReturnValue:
    state = get_state()
    user = signin.check_password(
        state, client(), data.identity, data.password, presented(data.device_token)
    )
    if state.two_factor.is_enabled(user):
        challenge = schemas.TwoFactorChallenge(
            challenge=state.authenticator.make_challenge(user),
            expires_in=TWO_FACTOR_WINDOW,
            detail=(
                "Send a code from the authenticator app (or a recovery code)."
                if state.two_factor.has_totp(user)
                else "Send a recovery code: passkeys work on the web pages only."
            ),
        )
        return jsonify(challenge.model_dump()), 202
    return signed_in(user, data.device_token)


def signed_in(user: UserMixin, device_token: str | None, **detail: str) -> Response:
    """Tokens for a completed sign-in, and the client's trusted-device token (refreshed when
    it sent a live one for this account, else new)."""
    state = get_state()
    caller = client()
    grant = state.refresh_tokens.start(user, ip=caller.ip, user_agent=caller.user_agent)
    signin.signed_in(state, caller, user, **detail)
    trust = state.devices.trust(
        user, presented(device_token), kind=API, ip=caller.ip, user_agent=caller.user_agent
    )
    body = schemas.SignedIn(
        access_token=state.access_tokens.issue(user.id, grant.session),
        expires_in=state.access_tokens.lifetime,
        refresh_token=grant.refresh_token,
        device_token=trust.token,
    )
    return jsonify(body.model_dump())


@endpoint(
    "/login/two-factor",
    "POST",
    summary="Second step: the challenge and a TOTP or recovery code, for tokens",
    body=schemas.TwoFactorStep,
    response=schemas.SignedIn,
    errors=(400, 401, 429),
)
def login_two_factor(data: schemas.TwoFactorStep) -> Response:
    state = get_state()
    user = state.authenticator.check_challenge(data.challenge)
    method = signin.verify_second_factor(state, client(), user, data.code)
    state.authenticator.admit(user)  # the challenge is used up
    return signed_in(user, data.device_token, factor=method)


@endpoint(
    "/refresh",
    "POST",
    summary="Trade a refresh token for new tokens (the old one is used up)",
    body=schemas.RefreshTokenBody,
    response=schemas.TokenPair,
    errors=(400,),
)
def refresh(data: schemas.RefreshTokenBody) -> Response:
    state = get_state()
    grant = signin.refresh(state, client(), data.refresh_token)
    return token_pair(state, grant.user.id, grant.session, grant.refresh_token)


@endpoint(
    "/logout",
    "POST",
    summary="End the session of a refresh token (all its tokens)",
    body=schemas.RefreshTokenBody,
    status=204,
)
def logout(data: schemas.RefreshTokenBody) -> tuple[str, int]:
    user_id = get_state().refresh_tokens.revoke(data.refresh_token)
    if user_id is not None:
        signin.signed_out(get_state(), client(), user_id)
    return "", 204


@endpoint(
    "/logout-everywhere",
    "POST",
    summary="End every session of the account: browsers and API clients",
    status=204,
    auth=True,
    errors=AUTH_ERRORS,
)
def logout_everywhere() -> tuple[str, int]:
    user, _ = bearer()
    # Every trusted device too (the caller's own among them: it cannot be told apart here).
    self_service.end_sessions(get_state(), client(), user.id)
    return "", 204


@endpoint(
    "/me",
    "GET",
    summary="The signed-in account",
    response=schemas.User,
    auth=True,
    errors=AUTH_ERRORS,
)
def me() -> Response:
    user, _ = bearer()
    return jsonify(user_body(user))


@endpoint(
    "/me",
    "DELETE",
    summary="Delete the account and all its data (asks for the password)",
    body=schemas.PasswordBody,
    status=204,
    auth=True,
    errors=(401, 422, 429),
)
def delete_account(data: schemas.PasswordBody) -> tuple[str, int]:
    user, _ = bearer()
    try:
        self_service.delete_account(get_state(), client(), entity(user), data.password)
    except InvalidCredentials:
        raise FieldError("password", WRONG_PASSWORD) from None
    return "", 204


@endpoint(
    "/email",
    "POST",
    summary="Move to a new address: a link goes to it, and nothing changes until it is followed",
    body=schemas.ChangeEmail,
    response=schemas.Accepted,
    status=202,
    auth=True,
    errors=(401, 409, 422, 429, 503),
)
def change_email(data: schemas.ChangeEmail) -> tuple[Response, int]:
    user, _ = bearer()
    try:
        email = self_service.request_email_change(
            get_state(), client(), entity(user), data.password, data.email
        )
    except InvalidCredentials:
        raise FieldError("password", WRONG_PASSWORD) from None
    return accepted(f"A confirmation link is on its way to {mask_email(email)}.")


@endpoint(
    "/email/confirm",
    "POST",
    summary="Switch to the new address with the token from the mail",
    body=schemas.TokenBody,
    response=schemas.User,
    errors=(400, 409),
)
def confirm_email(data: schemas.TokenBody) -> Response:
    user = self_service.confirm_email_change(get_state(), client(), data.token)
    return jsonify(user_body(user))


@endpoint(
    "/password",
    "POST",
    summary="Change the password; every session and refresh token ends",
    body=schemas.ChangePassword,
    status=204,
    auth=True,
    errors=(401, 422),
)
def change_password(data: schemas.ChangePassword) -> tuple[str, int]:
    user, _ = bearer()
    state = get_state()
    try:
        passwords.change_password(
            state, client(), entity(user), data.current_password, data.new_password
        )
    except InvalidCredentials:
        # A wrong *current* password is a field error: the bearer token itself is fine.
        raise FieldError("current_password", WRONG_PASSWORD) from None
    except PasswordRejected as exc:
        raise FieldError("new_password", " ".join(exc.reasons)) from None
    return "", 204


@endpoint(
    "/verify-email/request",
    "POST",
    summary="Send a new verification link to the account's address",
    response=schemas.Accepted,
    status=202,
    auth=True,
    errors=(401, 429, 503),
)
def request_verification() -> tuple[Response, int]:
    user, _ = bearer()
    state = get_state()
    if not signup.send_verification(state, client(), entity(user)):
        return accepted("The address is already verified.")
    return accepted(f"A verification link is on its way to {mask_email(user.email)}.")


@endpoint(
    "/verify-email/resend",
    "POST",
    summary="Send a new verification link to an address (same answer for every address)",
    body=schemas.EmailBody,
    response=schemas.Accepted,
    status=202,
    errors=(429,),
)
def resend_verification(data: schemas.EmailBody) -> tuple[Response, int]:
    """For clients not signed in yet, e.g. when sign-in answers email_not_verified."""
    signup.offer_verification(get_state(), client(), data.email)
    return accepted("If that address still needs verifying, a link is on its way.")


@endpoint(
    "/verify-email",
    "POST",
    summary="Verify the address with the token from the mail",
    body=schemas.TokenBody,
    response=schemas.User,
    errors=(400,),
)
def verify_email(data: schemas.TokenBody) -> Response:
    user = signup.verify_email(get_state(), client(), data.token)
    return jsonify(user_body(user))


@endpoint(
    "/forgot-password",
    "POST",
    summary="Mail a reset link (same answer for every address)",
    body=schemas.EmailBody,
    response=schemas.Accepted,
    status=202,
    errors=(429,),
)
def forgot_password(data: schemas.EmailBody) -> tuple[Response, int]:
    passwords.offer_reset(get_state(), client(), data.email)
    return accepted("If an account uses that address, a reset link is on its way.")


@endpoint(
    "/reset-password",
    "POST",
    summary="Set a new password with the token from the mail; every session ends",
    body=schemas.ResetPassword,
    status=204,
    errors=(400, 422),
)
def reset_password(data: schemas.ResetPassword) -> tuple[str, int]:
    passwords.reset_password(get_state(), client(), data.token, data.password)
    return "", 204


@endpoint(
    "/sessions",
    "GET",
    summary="The account's sessions: browsers and API clients",
    response=schemas.Sessions,
    auth=True,
    errors=AUTH_ERRORS,
    tag="sessions",
)
def list_sessions() -> Response:
    user, claims = bearer()
    records = get_state().sessions.list_for(user.id)
    body = schemas.Sessions(
        sessions=[
            schemas.Session(
                id=record.id,
                created_at=record.created_at,
                last_seen_at=record.last_seen_at,
                ip=record.ip,
                user_agent=record.user_agent,
                current=record.id == claims["sid"],
            )
            for record in records
        ]
    )
    return jsonify(body.model_dump(mode="json"))


@endpoint(
    "/sessions/{session_id}",
    "DELETE",
    summary="End one session of the account",
    status=204,
    auth=True,
    errors=(401, 404),
    tag="sessions",
)
def end_session(session_id: str) -> tuple[str, int]:
    user, _ = bearer()
    if not self_service.end_session(get_state(), client(), user.id, session_id):
        raise NotFound("No such session.")
    return "", 204


@endpoint("/jwks.json", "GET", summary="Public keys that verify access tokens", tag="keys")
def jwks() -> Response:
    response = jsonify(get_state().access_tokens.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
