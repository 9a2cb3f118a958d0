"""A host app's tests usually turn CSRF off (WTF_CSRF_ENABLED=False): every page still works.

The app runs with ``TESTING = True``: a view or template that fails raises into the test
rather than answering 500. The pages come from the app's URL map, so a new page is swept
too; the clients come from the testing kit, as a host's would.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from flask_portcullis import get_state
from flask_portcullis.testing import PASSWORD as KIT_PASSWORD
from flask_portcullis.testing import ClientFactory, SentMail, TotpFactory, UserFactory

from .conftest import PASSWORD, AppFactory, FakeClock, make_user, text

PAGES = ("/login", "/register", "/forgot-password")
BLUEPRINTS = ("portcullis", "portcullis_admin")
# Every field of every form, each given something wrong.
BAD_FORM = {
    "identity": "nobody\x00",
    "username": "",
    "email": "not an address",
    "password": "",
    "password_confirm": "something else",
    "current_password": "wrong password",
    "new_password": "short",
    "new_password_confirm": "other",
    "remember": "maybe",
    "code": "12345x",
    "action": "explode",
    "session": "no-such-session",
    "device": "no-such-device",
    "credential": "{not json",
    "name": "\u202e" * 3,
}


# A provider whose pages need no network to render: its authorize URL is given, not
# discovered (nothing listens there; the round trip itself is tests/test_federation.py's).
NOWHERE = "http://127.0.0.1:9"
PROVIDER = {
    "client_id": "csrf-off",
    "client_secret": "csrf-off-secret",
    "authorize_url": f"{NOWHERE}/authorize",
    "access_token_url": f"{NOWHERE}/token",
    "api_base_url": f"{NOWHERE}/",
}


@pytest.fixture
def app(make_demo_app: AppFactory, clock: FakeClock) -> Flask:
    return make_demo_app(
        "",
        clock=clock,
        mail=False,
        WTF_CSRF_ENABLED=False,
        PORTCULLIS_OAUTH_PROVIDERS={"github": PROVIDER},
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    make_user(app)
    return app.test_client()


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_without_csrf(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200


def test_a_failed_and_a_right_sign_in_without_csrf(client: FlaskClient) -> None:
    refused = client.post("/login", data={"identity": "ada", "password": "wrong password!"})
    assert refused.status_code == 422
    assert "Incorrect username, email or password." in refused.get_data(as_text=True)
    signed_in = client.post("/login", data={"identity": "ada", "password": PASSWORD})
    assert signed_in.status_code == 302
    assert client.get("/account").status_code == 200


def rules(app: Flask, method: str) -> list[Rule]:
    """The app's Portcullis rules that answer ``method`` (static files aside)."""
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if rule.endpoint.partition(".")[0] in BLUEPRINTS
            and method in (rule.methods or ())
            and not rule.endpoint.endswith(".static")
        ),
        key=lambda rule: rule.rule,
    )


def paths(app: Flask, method: str, live_token: Callable[[str], str]) -> list[str]:
    """Every Portcullis path for ``method``; a ``<token>`` page once with a live token of its
    own (a link just mailed) and once with a made-up one; a ``<provider>`` page for the
    configured provider."""
    found = []
    for rule in rules(app, method):
        arguments = {"token", "provider", "user_id", "invitation_id", "action"}
        assert rule.arguments <= arguments, f"give {rule.rule} its arguments here"
        if rule.arguments == {"provider"}:
            found.append(rule.rule.replace("<provider>", "github"))
            continue
        if "user_id" in rule.arguments:  # an account of the console: the first one made
            with app.app_context():
                [first] = get_state(app).accounts.search("", limit=1)
            path = rule.rule.replace("<int:user_id>", str(first.id))
            found.append(path.replace("<action>", "unlock"))  # the one that changes nothing
            continue
        if "invitation_id" in rule.arguments:  # none is made: the console's 404
            found.append(
                rule.rule.replace("<int:invitation_id>", "1").replace("<action>", "resend")
            )
            continue
        if not rule.arguments:
            found.append(rule.rule)
            continue
        for token in (live_token(rule.endpoint), "made-up-token"):
            found.append(rule.rule.replace("<token>", token))
    return found


@pytest.fixture
def live_token(app: Flask, portcullis_user: UserFactory) -> Callable[[str], str]:
    """Make the token of a live link for a link page's endpoint, each for a new user (the
    test signs in as none of them; following a link may use it up)."""

    def make(endpoint: str) -> str:
        user = portcullis_user(verified=False)
        with app.app_context():
            state = get_state(app)
            stored = state.accounts.get(user.id)
            assert stored is not None
            if endpoint == "portcullis.verify_email":
                return state.links.verification_token(stored)
            if endpoint == "portcullis.reset_password":
                return state.links.reset_token(stored)
            if endpoint == "portcullis.accept_invitation":
                return state.invitations.create(f"invited-{user.email}", [], by=None)[1]
            assert endpoint == "portcullis.confirm_email", f"no live token for {endpoint}"
            new_address = f"new-{user.email}"
            return state.links.email_change_token(stored, new_address)[1]

    return make


@pytest.fixture
def browsers(
    app: Flask,
    portcullis_user: UserFactory,
    portcullis_client: ClientFactory,
    portcullis_totp: TotpFactory,
) -> Callable[[], dict[str, FlaskClient]]:
    """Make new browsers: an anonymous one, one halfway through a two-factor sign-in, one
    signed in without a second factor and an admin's with one."""
    member, admin = portcullis_user(), portcullis_user(roles=["admin"])
    portcullis_totp.enable(admin)

    def make() -> dict[str, FlaskClient]:
        halfway = app.test_client()
        form = {"identity": admin.username, "password": KIT_PASSWORD}
        assert halfway.post("/login", data=form).headers["Location"] == "/login/two-factor"
        return {
            "anonymous": app.test_client(),
            "second step": halfway,
            "member": portcullis_client(member),
            "admin": portcullis_client(admin),
        }

    return make


def test_every_page_renders_without_csrf(
    app: Flask,
    browsers: Callable[[], dict[str, FlaskClient]],
    live_token: Callable[[str], str],
    portcullis_outbox: list[SentMail],
) -> None:
    answers: dict[str, dict[str, int]] = {}
    visitors = browsers()  # looking changes nothing: the same browsers see every page
    for path in paths(app, "GET", live_token):
        for who, browser in visitors.items():
            answers.setdefault(path, {})[who] = browser.get(path).status_code
    assert all(status < 500 for statuses in answers.values() for status in statuses.values())
    made_up = [path for path in answers if path.endswith("/made-up-token")]
    assert len(made_up) == 4  # verify, reset, confirm-email and invitation links
    assert all(set(answers[path].values()) == {400} for path in made_up)  # "link invalid"
    # Every other page was seen at least once (not only redirects), its forms and all.
    # A provider's pages answer only within its round trip (they send a browser without
    # one back to sign in); tests/test_federation.py walks them.
    unseen = [
        path
        for path, statuses in answers.items()
        if path not in made_up
        and 200 not in statuses.values()
        and not path.startswith("/login/oauth/github/")
    ]
    assert unseen == []
    assert answers["/login/two-factor"]["second step"] == 200
    assert answers["/admin/"]["admin"] == 200
    assert answers["/account/two-factor"] == {
        "anonymous": 302,
        "second step": 302,
        "member": 200,  # the setup page
        "admin": 200,  # the page to turn it off
    }


def test_every_form_refuses_bad_input_without_csrf(
    app: Flask,
    browsers: Callable[[], dict[str, FlaskClient]],
    live_token: Callable[[str], str],
    portcullis_outbox: list[SentMail],
) -> None:
    answers: dict[str, dict[str, int]] = {}
    for path in paths(app, "POST", live_token):
        # New browsers each time: a refused form must not depend on what came before.
        for who, browser in browsers().items():
            response = browser.post(path, data=BAD_FORM)
            answers.setdefault(path, {})[who] = response.status_code
            assert response.status_code < 500, (path, who, text(response))
    assert answers["/login"]["anonymous"] == 422
    assert answers["/register"]["anonymous"] == 422
    assert answers["/login/two-factor"]["second step"] == 422
    for page in ("/account/password", "/account/email", "/account/two-factor", "/reauthenticate"):
        assert answers[page]["member"] == 422, page
