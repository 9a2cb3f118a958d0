"""Bridge Flask-Login to server-side sessions.

Flask-Login keeps working as documented (``current_user``, ``login_required``,
its signals); its ``user_loader`` here resolves the server-side session named
in the cookie, so a session ended on the server is anonymous on its next
request. Flask-Login's own remember cookie is not used: "remember me" makes
the (signed) session cookie persistent instead, and the server-side record
decides how long it lives.
"""

from __future__ import annotations

from flask import g, request, session
from flask_login import LoginManager, current_user, login_user, logout_user

from ..caller import client_ip
from ..models import SignedInUser, UserMixin, entity
from ..sessions import SessionView
from ..state import get_state
from .keys import AUTHENTICATED_AT, SESSION_KEY


def load_user(user_id: str) -> SignedInUser | None:
    """Flask-Login user loader: the user of the live server-side session, or None.

    ``current_user`` is then a SignedInUser: its identity fields and roles came
    with the session check; the ORM entity loads only when something asks for more."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return None
    # The id Flask-Login kept in the signed cookie: the store reads that user with the session.
    ok = isinstance(user_id, str) and user_id.isascii() and user_id.isdigit() and len(user_id) < 19
    hint = int(user_id) if ok else None
    active = get_state().sessions.resolve(token, hint)
    if active is None or str(active.user.id) != user_id:
        session.pop(SESSION_KEY, None)
        return None
    g.portcullis_session = active.record
    return active.user


def current_session_token() -> str | None:
    """Return the session token this browser holds, if signed in (its digest is the id)."""
    value = session.get(SESSION_KEY)
    return value if isinstance(value, str) else None


def current_session_record() -> SessionView | None:
    """Return the current browser's session as load_user found it."""
    record: SessionView | None = g.get("portcullis_session")
    return record


def sign_in(user: UserMixin, *, remember: bool) -> None:
    """Start a new server-side session for ``user`` in this browser.

    The old session (if any) ends and the cookie is emptied first, so no
    pre-login state or id survives sign-in (OWASP ASVS 3.2.1, no fixation).
    """
    state = get_state()
    old = current_session_token()
    if old:  # in the new session's transaction: whatever the sign-in staged commits with it
        state.sessions.end(old, commit=False)
    session.clear()
    token = state.sessions.start(
        user, remember=remember, ip=client_ip(), user_agent=request.user_agent.string
    )
    session[SESSION_KEY] = token
    session[AUTHENTICATED_AT] = int(state.clock().timestamp())
    session.permanent = remember
    login_user(user, remember=False, fresh=True, force=True)


def sign_out() -> None:
    """End this browser's server-side session and forget the user."""
    token = current_session_token()
    logout_user()  # first, so its signal still sees the user
    if token:
        get_state().sessions.end(token)
    session.clear()


def init_login_manager(login_manager: LoginManager) -> None:
    login_manager.user_loader(load_user)
    login_manager.login_view = "portcullis.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.login_message_category = "info"


def is_fresh() -> bool:
    """Tell whether this browser gave its password within PORTCULLIS_FRESH_LOGIN_WINDOW."""
    state = get_state()
    at = session.get(AUTHENTICATED_AT)
    now = int(state.clock().timestamp())
    return isinstance(at, int) and now - at <= state.settings.fresh_login_window


def mark_fresh() -> None:
    session[AUTHENTICATED_AT] = int(get_state().clock().timestamp())


def me() -> UserMixin:
    """The signed-in user's ORM entity (not Flask-Login's proxy), for pages behind
    login_required that hand it to a service."""
    return entity(current_user._get_current_object())
