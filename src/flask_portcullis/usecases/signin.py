"""Signing in: what every way in does once the factors are given, and the second factor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ..audit_events import Event
from ..exceptions import (
    AccountInactive,
    EmailNotVerified,
    InvalidCode,
    InvalidCredentials,
    PasskeyRejected,
    RefreshTokenReused,
)
from ..models import UserMixin
from ..passkeys import RelyingParty
from ..refresh_tokens import Grant
from ..state import State
from .client import Client, record, stage_record


def signed_in(state: State, client: Client, user: UserMixin, **detail: Any) -> None:
    """Record a completed sign-in (after the caller started the session or tokens)."""
    announce = stage_signed_in(state, client, user, **detail)
    state.db.session.commit()
    announce()


def stage_signed_in(
    state: State, client: Client, user: UserMixin, **detail: Any
) -> Callable[[], None]:
    """Add a sign-in's audit row to the caller's transaction, which starts its session (so
    neither is stored without the other); return what tells the owner and sends the
    signals, for after the commit.

    The owner is told about a sign-in from a new device, or one after a run of
    failures: the check compares with the earlier sign-ins in the audit log,
    which this one's row would otherwise join.
    """
    failures = state.audit.failures_since_sign_in(user.id)
    new_device = state.settings.new_device_notice and state.audit.is_new_device(
        user.id, client.ip, client.user_agent
    )
    send_signals = stage_record(state, Event.SIGN_IN, user.id, client, **detail)

    def announce() -> None:
        if new_device or failures >= state.settings.login_free_failures:
            state.notifier.sign_in_notice(user, client.device, failures=failures)
        send_signals()

    return announce


def sign_in_failed(
    state: State, client: Client, user_id: int | None, reason: str, **detail: Any
) -> None:
    """Record a refused sign-in (the reason is for the log, never for the visitor)."""
    record(state, Event.SIGN_IN_FAILED, user_id, client, reason=reason, **detail)


def verify_second_factor(
    state: State, client: Client, user: UserMixin, code: str, **detail: Any
) -> str:
    """Check a TOTP or recovery code under the second-factor lock; return which it was
    ("totp" or "recovery"), or record the failure and raise InvalidCode. A used recovery
    code is recorded and the owner mailed how many are left."""
    try:
        method = state.authenticator.second_factor(
            user, partial(state.two_factor.verify, user, code)
        )
    except InvalidCode:
        sign_in_failed(state, client, user.id, "second-factor", **detail)
        raise
    if method == "recovery":
        record(state, Event.RECOVERY_CODE_USED, user.id, client, **detail)
        left = state.two_factor.recovery_codes_left(user)
        state.notifier.factor_changed(
            user,
            client.device,
            change=f"A recovery code was used to sign in. {left} unused codes are left.",
        )
    return method


def check_password(
    state: State,
    client: Client,
    identity: str,
    password: str,
    device_tokens: Sequence[str] = (),
) -> UserMixin:
    """The first step of a password sign-in: the account, once its password is right.

    A refusal (InvalidCredentials, AccountInactive, EmailNotVerified) is
    recorded with its reason and raised for the caller to word; Throttled and
    LoginDelayed reach the caller too. The caller continues with the second
    factor, or starts the session or tokens and calls signed_in.
    """
    try:
        return state.authenticator.authenticate(
            identity, password, client=client.ip, device_tokens=device_tokens
        )
    except (InvalidCredentials, AccountInactive, EmailNotVerified) as exc:
        sign_in_failed(state, client, exc.user_id, exc.reason)
        raise


def signed_out(state: State, client: Client, user_id: int) -> None:
    """Record a sign-out (after the caller ended the session or the refresh-token family)."""
    record(state, Event.SIGN_OUT, user_id, client)


def refresh(state: State, client: Client, refresh_token: str) -> Grant:
    """Trade a refresh token for the next one. A token used before ends its whole family
    (a stolen token is of no use to anyone once the owner refreshes): recorded, and
    RefreshTokenReused raised; TokenInvalid for anything else unusable."""
    try:
        return state.refresh_tokens.rotate(refresh_token)
    except RefreshTokenReused as exc:
        record(state, Event.SESSION_REVOKED, exc.user_id, client, reason="refresh-token-reused")
        raise


def throttled(state: State, client: Client, path: str, retry_after: int) -> None:
    """Record a request refused by a rate limit (the adapter answers 429)."""
    record(state, Event.THROTTLED, None, client, path=path, retry_after=retry_after)


def check_passkey(
    state: State,
    client: Client,
    relying_party: RelyingParty,
    answer: str,
    take_challenge: Callable[[], bytes | None],
    expired: str,
) -> UserMixin:
    """Passwordless sign-in: the account of a passkey that verified its owner.

    The client's attempt is counted first (Throttled reaches the caller, the
    challenge still unused); then the challenge is taken. A missing one
    (``expired`` says so), a refused answer or an account that may not sign in
    is recorded and raised (PasskeyRejected, AccountInactive, EmailNotVerified).
    """
    state.authenticator.guard.before_client_attempt(client.ip)
    challenge = take_challenge()
    try:
        if challenge is None:
            raise PasskeyRejected(expired)
        user, _ = state.passkeys.authenticate(relying_party, answer, challenge)
        state.authenticator.admit(user)
    except PasskeyRejected:
        sign_in_failed(state, client, None, "passkey")
        raise
    except (AccountInactive, EmailNotVerified) as exc:
        sign_in_failed(state, client, exc.user_id, exc.reason)
        raise
    return user
