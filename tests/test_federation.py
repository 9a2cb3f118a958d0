"""Sign-in with providers against real ones on 127.0.0.1: Node's oidc-provider and a GitHub
stand-in (tests/identity_providers.py). Every protocol check shows its refusal, every
linking rule its effect, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.audit_events import Event
from flask_portcullis.exceptions import ConfigurationError
from flask_portcullis.web.keys import SECOND_STEP

from .api_client import wait_for_mail
from .conftest import (
    CSRF_INPUT,
    PASSWORD,
    AppFactory,
    FakeClock,
    csrf_token,
    deactivate,
    login,
    make_user,
    path_of,
    reset_by_link,
    signed_in,
    submit,
    text,
)
from .databases import Server, database_server
from .identity_providers import GitHubEmail, GitHubProvider, GitHubUser, OidcProvider, OidcUser
from .totp import STEP, code_for

IDP = "idp"
CALLBACK = f"http://localhost/login/oauth/{IDP}/callback"
SIGNUP = f"/login/oauth/{IDP}/signup"
GITHUB_CALLBACK = "http://localhost/login/oauth/github/callback"


# -- the site, on SQLite and PostgreSQL -------------------------------------------------------


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with database_server("postgresql", tmp_path_factory.mktemp("pg")) as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    server: Server = request.getfixturevalue("postgres")
    return {"SQLALCHEMY_DATABASE_URI": server.create_database()}


@pytest.fixture(scope="module")
def idp_client(oidc_provider: OidcProvider) -> dict[str, str]:
    registered = oidc_provider.register_client([CALLBACK])
    return {
        "server_metadata_url": oidc_provider.metadata_url,
        "client_id": registered.client_id,
        "client_secret": registered.client_secret,
        "label": "Example ID",
    }


@pytest.fixture
def providers(idp_client: dict[str, str], github_provider: GitHubProvider) -> dict[str, Any]:
    app = github_provider.register_app(GITHUB_CALLBACK)
    github = {
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "authorize_url": github_provider.authorize_url,
        "access_token_url": github_provider.access_token_url,
        "api_base_url": github_provider.api_base_url,
    }
    return {IDP: idp_client, "github": github}


class Build(Protocol):
    def __call__(self, **config: Any) -> Flask: ...


@pytest.fixture
def build(
    make_demo_app: AppFactory,
    database: dict[str, str],
    providers: dict[str, Any],
    clock: FakeClock,
) -> Build:
    """The demo with both providers, on this test's database; ``config`` added."""

    def factory(**config: Any) -> Flask:
        settings: dict[str, Any] = {"PORTCULLIS_OAUTH_PROVIDERS": providers, **database}
        return make_demo_app(clock=clock, **settings, **config)

    return factory


@pytest.fixture
def site(build: Build) -> Flask:
    return build()


# -- walking the flow -------------------------------------------------------------------------

ADA = OidcUser("ada-sub-1", "ada@example.com", True, "Ada Lovelace", "ada")
GRACE = OidcUser("grace-sub-2", "grace@example.com", True, "Grace Hopper", "grace")


def start(browser: FlaskClient, provider: str = IDP, intent: str = "sign-in") -> str:
    """Press the provider's button; return the provider's authorization URL."""
    page = "/account/connections" if intent == "link" else "/login"
    if intent == "reauthenticate":
        page = "/reauthenticate"
    token = csrf_token(browser, page)
    response = browser.post(
        f"/login/oauth/{provider}", data={"csrf_token": token, "intent": intent}
    )
    assert response.status_code == 302, text(response)[:2000]
    return response.headers["Location"]


def callback(browser: FlaskClient, url: str) -> TestResponse:
    return browser.get(url)


def via_provider(
    browser: FlaskClient, oidc_provider: OidcProvider, user: OidcUser = ADA, **kwargs: str
) -> TestResponse:
    return callback(browser, oidc_provider.consent(start(browser, **kwargs), user))


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def assert_refused(response: TestResponse, status: int = 400, words: str = "") -> None:
    assert response.status_code == status, text(response)[:2000]
    assert "Sign-in did not work" in text(response)
    assert words in text(response)


def rows(app: Flask, event: Event) -> list[dict[str, Any]]:
    with app.app_context():
        state = get_state(app)
        AuditEvent = state.models.AuditEvent
        query = select(AuditEvent).where(AuditEvent.event == str(event))
        return [
            {"user_id": r.user_id, **json.loads(r.detail)}
            for r in state.db.session.scalars(query.order_by(AuditEvent.id))
        ]


def links(app: Flask) -> list[tuple[int, str, str]]:
    with app.app_context():
        state = get_state(app)
        Link = state.models.ProviderLink
        found = state.db.session.scalars(select(Link).order_by(Link.id))
        return [(link.user_id, link.provider, link.subject) for link in found]


def new_account(browser: FlaskClient, oidc_provider: OidcProvider, user: OidcUser = ADA) -> None:
    """Sign up through the provider as ``user`` (the suggested address kept)."""
    response = via_provider(browser, oidc_provider, user)
    assert path_of(response) == f"/login/oauth/{IDP}/signup"
    page = browser.get(f"/login/oauth/{IDP}/signup")
    assert f'value="{user.preferred_username}"' in text(page)
    token = csrf_token(browser, f"/login/oauth/{IDP}/signup")
    data = {"csrf_token": token, "username": user.preferred_username, "email": user.email}
    done = browser.post(f"/login/oauth/{IDP}/signup", data=data)
    assert done.status_code == 302, text(done)[:2000]
    assert signed_in(browser)


def logged_in(browser: FlaskClient, identity: str, password: str) -> bool:
    """Sign in with a password on the sign-in page; tell whether it worked."""
    login(browser, identity, password)
    return signed_in(browser)


def user_id(app: Flask, email: str) -> int:
    with app.app_context():
        user = get_state(app).accounts.get_by_email(email)
        assert user is not None
        return user.id


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("providers_setting", "words"),
    [
        ({"okta": {"client_id": "a", "client_secret": "b"}}, "'okta' is not a preset"),
        ({"github": {"client_id": "a"}}, "client_secret is missing"),
        (
            {
                "corp": {
                    "server_metadata_url": "http://id.example.com/.well-known/x",
                    "client_id": "a",
                    "client_secret": "b",
                }
            },
            "must be an https:// URL",
        ),
        (
            {
                "corp": {
                    "server_metadata_url": "https://id.example.com/x",
                    "client_id": "a",
                    "client_secret": "b",
                    "scope": "email",
                }
            },
            "scope must include openid",
        ),
        ({"Bad Name": {"client_id": "a", "client_secret": "b"}}, "provider name"),
        ({"github": {"client_id": "a", "client_secret": "b", "colour": "x"}}, "unknown setting"),
        (
            {
                "cancel": {
                    "server_metadata_url": "https://id.example.com/x",
                    "client_id": "a",
                    "client_secret": "b",
                }
            },
            "provider name",
        ),
        ("github", "must be a mapping"),
    ],
)
def test_a_wrong_provider_setting_stops_start_up_naming_the_key(
    make_demo_app: AppFactory, providers_setting: Any, words: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_demo_app(PORTCULLIS_OAUTH_PROVIDERS=providers_setting)
    assert "PORTCULLIS_OAUTH_PROVIDERS" in str(caught.value)
    assert words in str(caught.value)


def test_http_is_accepted_only_on_a_loopback_host(make_demo_app: AppFactory) -> None:
    local = {"server_metadata_url": "http://127.0.0.1:9/x", "client_id": "a", "client_secret": "b"}
    app = make_demo_app(
        PORTCULLIS_OAUTH_PROVIDERS={
            "local": local,
            "dev": {**local, "server_metadata_url": "http://localhost:9/x"},
        }
    )
    assert [p.name for p in get_state(app).settings.oauth_providers] == ["local", "dev"]


def test_without_an_address_for_the_redirect_uri_start_up_stops(
    make_demo_app: AppFactory, idp_client: dict[str, str]
) -> None:
    with pytest.raises(ConfigurationError, match="PORTCULLIS_OAUTH_REDIRECT_BASE"):
        make_demo_app(
            PORTCULLIS_OAUTH_PROVIDERS={IDP: idp_client}, TRUSTED_HOSTS=["accounts.example.com"]
        )


# -- the buttons -----------------------------------------------------------------------------


def test_login_and_register_show_a_post_button_per_provider(site: Flask) -> None:
    browser = site.test_client()
    for page in ("/login", "/register"):
        body = text(browser.get(page))
        assert f'action="/login/oauth/{IDP}"' in body
        assert "Sign in with Example ID" in body
        assert "Sign in with GitHub" in body


def test_a_sign_in_cannot_start_by_get_or_without_the_csrf_token(site: Flask) -> None:
    browser = site.test_client()
    assert browser.get(f"/login/oauth/{IDP}").status_code == 405
    response = browser.post(f"/login/oauth/{IDP}", data={"intent": "sign-in"})
    assert response.status_code == 400  # the CSRF check; nothing sent to the provider
    assert "Location" not in response.headers
    token = csrf_token(browser, "/login")
    assert browser.post("/login/oauth/nobody", data={"csrf_token": token}).status_code == 404


def test_the_csp_lets_the_sign_in_form_go_to_the_provider(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    policy = site.test_client().get("/login").headers["Content-Security-Policy"]
    form_action = next(d for d in policy.split("; ") if d.startswith("form-action"))
    assert form_action.split()[1:] == [
        "'self'",
        oidc_provider.issuer,
        "http://127.0.0.1:"
        + (
            urlsplit(get_state(site).settings.oauth_providers[1].authorize_url).netloc.split(":")[1]
        ),
    ]


# -- the protocol ----------------------------------------------------------------------------


def test_the_request_carries_state_pkce_s256_nonce_and_the_configured_redirect_uri(
    site: Flask,
) -> None:
    query = parse_qs(urlsplit(start(site.test_client())).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 20
    assert len(query["nonce"][0]) >= 20
    assert query["redirect_uri"] == [CALLBACK]
    assert "openid" in query["scope"][0].split()


def test_the_redirect_uri_comes_from_configuration_not_the_host_header(
    build: Build,
) -> None:
    app = build(
        PORTCULLIS_OAUTH_REDIRECT_BASE="https://accounts.example.com",
        TRUSTED_HOSTS=[".example.com"],
    )
    browser, evil = app.test_client(), "http://evil.example.com"
    match = CSRF_INPUT.search(text(browser.get("/login", base_url=evil)))
    assert match is not None
    response = browser.post(
        f"/login/oauth/{IDP}",
        data={"csrf_token": match.group(1), "intent": "sign-in"},
        base_url=evil,
    )
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["redirect_uri"] == [f"https://accounts.example.com/login/oauth/{IDP}/callback"]


def test_a_new_person_signs_up_then_signs_in_again(
    site: Flask, oidc_provider: OidcProvider, outbox: Any
) -> None:
    browser = site.test_client()
    new_account(browser, oidc_provider)
    ada = user_id(site, "ada@example.com")
    assert links(site) == [(ada, IDP, ADA.sub)]
    with site.app_context():
        user = get_state(site).accounts.get(ada)
        assert user is not None
        assert user.email_verified
        assert user.password_hash == ""
    assert [r["provider"] for r in rows(site, Event.PROVIDER_LINKED)] == [IDP]
    assert rows(site, Event.SIGN_IN)[-1]["provider"] == IDP
    # No password opens it, and the provider signs in again.
    assert not logged_in(site.test_client(), "ada", "")
    again = site.test_client()
    response = via_provider(again, oidc_provider)
    assert response.status_code == 302
    assert signed_in(again)


def test_a_callback_replayed_signs_in_at_most_once(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    browser = site.test_client()
    new_account(browser, oidc_provider)
    attacker = site.test_client()
    url = oidc_provider.consent(start(attacker), ADA)
    cookie = attacker.get_cookie("session")
    assert cookie is not None
    assert callback(attacker, url).status_code == 302
    assert signed_in(attacker)
    replay = site.test_client()
    replay.set_cookie("session", cookie.value)  # the cookie from before the callback, too
    assert_refused(callback(replay, url))
    assert not signed_in(replay)


def test_a_tampered_or_foreign_state_is_refused(site: Flask, oidc_provider: OidcProvider) -> None:
    browser = site.test_client()
    url = oidc_provider.consent(start(browser), ADA)
    assert_refused(callback(browser, with_query(url, state="x" * 32)), words="another browser")
    other = site.test_client()  # never started a sign-in
    url = oidc_provider.consent(start(browser), ADA)
    assert_refused(callback(other, url))
    assert not signed_in(other)
    assert not signed_in(browser)


def test_a_code_verifier_that_does_not_match_is_refused_by_the_provider(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    browser = site.test_client()
    url = oidc_provider.consent(start(browser), ADA)
    with browser.session_transaction() as session:
        [key] = [k for k in session if k.startswith(f"_state_{IDP}_")]
        session[key]["data"]["code_verifier"] = "w" * 64
        session.modified = True
    assert_refused(callback(browser, url), words="could not be verified")
    assert not signed_in(browser)


@pytest.mark.parametrize(
    ("forgery", "why"),
    [
        ({"claims": {"nonce": "not-the-nonce"}}, "nonce"),
        ({"remove": ["nonce"]}, "nonce"),
        ({"signature": "foreign"}, "signature"),
        ({"signature": "none"}, "alg none"),
        ({"claims": {"iss": "https://elsewhere.example"}}, "iss"),
        ({"claims": {"aud": "someone-else"}}, "aud"),
        ({"claims": {"exp": 1_000_000_000}}, "exp"),
        ({"remove": ["iat"]}, "iat"),
    ],
)
def test_a_forged_id_token_is_refused(
    site: Flask, oidc_provider: OidcProvider, forgery: dict[str, Any], why: str
) -> None:
    browser = site.test_client()
    url = oidc_provider.consent(start(browser), ADA)
    with oidc_provider.forged_id_tokens(**forgery):
        response = callback(browser, url)
    assert_refused(response, words="could not be verified")
    assert not signed_in(browser)
    assert rows(site, Event.SIGN_IN_FAILED)[-1]["reason"] == "provider"


@pytest.mark.parametrize("iss", ["https://mix-up.example", None])
def test_the_answer_must_name_the_provider_as_its_issuer(
    site: Flask, oidc_provider: OidcProvider, iss: str | None
) -> None:
    browser = site.test_client()
    url = oidc_provider.consent(start(browser), ADA)
    assert_refused(callback(browser, with_query(url, iss=iss)))
    assert not signed_in(browser)


@pytest.mark.parametrize(
    ("error", "words"),
    [("access_denied", "You cancelled"), ("invalid_request", "refused the request")],
)
def test_the_providers_error_answers_end_on_a_clear_page(
    site: Flask, oidc_provider: OidcProvider, error: str, words: str
) -> None:
    browser = site.test_client()
    assert_refused(callback(browser, oidc_provider.deny(start(browser), error)), words=words)


# A provider that does not answer, or answers with an error page, is unreachable (502);
# one that answers what is no token gave an answer that cannot be verified (400).
@pytest.mark.parametrize(("mode", "status"), [("reset", 502), ("error", 502), ("garbage", 400)])
def test_a_token_endpoint_that_fails_ends_on_a_clear_page(
    site: Flask, oidc_provider: OidcProvider, mode: str, status: int
) -> None:
    browser = site.test_client()
    url = oidc_provider.consent(start(browser), ADA)
    with oidc_provider.token_endpoint_fails(mode):  # type: ignore[arg-type]
        response = callback(browser, url)
    assert response.status_code == status
    assert "Sign-in did not work" in text(response)
    assert not signed_in(browser)


def test_callbacks_are_rate_limited_per_client(build: Build, oidc_provider: OidcProvider) -> None:
    app = build(PORTCULLIS_LOGIN_LIMIT_PER_CLIENT="3/minute", RATELIMIT_ENABLED=True)
    browser = app.test_client()
    for _ in range(3):
        assert callback(browser, f"/login/oauth/{IDP}/callback?state=x&code=y").status_code == 400
    limited = callback(browser, f"/login/oauth/{IDP}/callback?state=x&code=y")
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers


# -- accounts and linking --------------------------------------------------------------------


def test_an_address_that_matches_an_account_never_signs_into_it(
    site: Flask, oidc_provider: OidcProvider, outbox: Any
) -> None:
    make_user(site)  # ada, ada@example.com, with a password
    browser = site.test_client()
    response = via_provider(browser, oidc_provider)
    assert path_of(response) == f"/login/oauth/{IDP}/existing"
    assert not signed_in(browser)
    page = text(browser.get(f"/login/oauth/{IDP}/existing"))
    assert "already have an account" in page
    assert "Example ID" in page
    assert links(site) == []
    # The owner signs in to it with the password, and is asked: only then is it linked.
    assert path_of(login(browser, "ada", PASSWORD)) == f"/login/oauth/{IDP}/confirm"
    assert links(site) == []
    assert "ada@example.com" in text(browser.get(f"/login/oauth/{IDP}/confirm"))
    submit(browser, f"/login/oauth/{IDP}/confirm", {"decision": "link"})
    assert links(site) == [(user_id(site, "ada@example.com"), IDP, ADA.sub)]
    wait_for_mail(outbox, "ada@example.com", lambda m: "linked" in m.text)
    fresh = site.test_client()
    assert via_provider(fresh, oidc_provider).status_code == 302
    assert signed_in(fresh)


def test_signing_in_to_another_account_links_nothing(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    make_user(site)
    make_user(site, "grace", "grace@example.com")
    browser = site.test_client()
    via_provider(browser, oidc_provider)
    assert logged_in(browser, "grace", PASSWORD)
    assert links(site) == []


def test_cancelling_links_nothing(site: Flask, oidc_provider: OidcProvider) -> None:
    make_user(site)
    browser = site.test_client()
    via_provider(browser, oidc_provider)
    submit(
        browser,
        f"/login/oauth/{IDP}/existing",
        {},
    )
    token = csrf_token(browser, f"/login/oauth/{IDP}/existing")
    browser.post("/login/oauth/cancel", data={"csrf_token": token})
    assert logged_in(browser, "ada", PASSWORD)
    assert links(site) == []


def test_an_unverified_provider_address_never_matches(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    make_user(site)
    unverified = OidcUser("mallory-1", "ada@example.com", False, "Mallory", "mallory")
    browser = site.test_client()
    response = via_provider(browser, oidc_provider, unverified)
    assert path_of(response) == f"/login/oauth/{IDP}/signup"  # a new person, not ada's
    taken = submit(browser, SIGNUP, {"username": "mallory", "email": "ada@example.com"})
    assert taken.status_code == 422
    assert "That address is taken" in text(taken)
    assert links(site) == []
    assert not signed_in(browser)


def test_an_unverified_address_is_not_confirmed_and_gets_a_link(
    site: Flask, oidc_provider: OidcProvider, outbox: Any
) -> None:
    person = OidcUser("lin-3", "lin@example.com", False, "Lin", "lin")
    browser = site.test_client()
    new_account(browser, oidc_provider, person)
    with site.app_context():
        user = get_state(site).accounts.get(user_id(site, "lin@example.com"))
        assert user is not None
        assert not user.email_verified
    wait_for_mail(outbox, "lin@example.com", lambda m: "Confirm your email" in m.subject)


def test_a_linked_account_with_a_second_factor_is_asked_for_it(
    site: Flask, oidc_provider: OidcProvider, clock: FakeClock
) -> None:
    browser = site.test_client()
    new_account(browser, oidc_provider)
    secret = enable_totp(site, user_id(site, "ada@example.com"), clock)
    fresh = site.test_client()
    response = via_provider(fresh, oidc_provider)
    assert path_of(response) == "/login/two-factor"
    assert not signed_in(fresh)
    with fresh.session_transaction() as session:
        assert SECOND_STEP in session
    done = submit(fresh, "/login/two-factor", {"code": code_for(secret, clock)})
    assert done.status_code == 302
    assert signed_in(fresh)
    assert rows(site, Event.SIGN_IN)[-1]["provider"] == IDP


def test_the_second_factor_after_a_provider_can_be_turned_off(
    build: Build, oidc_provider: OidcProvider, clock: FakeClock
) -> None:
    app = build(PORTCULLIS_OAUTH_SECOND_FACTOR=False)
    browser = app.test_client()
    new_account(browser, oidc_provider)
    enable_totp(app, user_id(app, "ada@example.com"), clock)
    fresh = app.test_client()
    assert via_provider(fresh, oidc_provider).status_code == 302
    assert signed_in(fresh)


def test_a_deactivated_linked_account_is_refused(site: Flask, oidc_provider: OidcProvider) -> None:
    new_account(site.test_client(), oidc_provider)
    deactivate(site, user_id(site, "ada@example.com"))
    browser = site.test_client()
    response = via_provider(browser, oidc_provider)
    assert path_of(response) == "/login"
    assert not signed_in(browser)
    assert rows(site, Event.SIGN_IN_FAILED)[-1]["reason"] == "inactive"


def test_linking_from_the_account_asks_for_the_password_first_then_links(
    site: Flask, oidc_provider: OidcProvider, outbox: Any, clock: Any
) -> None:
    make_user(site)
    browser = site.test_client()
    assert logged_in(browser, "ada", PASSWORD)
    page = text(browser.get("/account/connections"))
    assert "Link Example ID" in page
    response = callback(browser, oidc_provider.consent(start(browser, intent="link"), GRACE))
    assert path_of(response) == "/account/connections"
    ada = user_id(site, "ada@example.com")
    assert links(site) == [(ada, IDP, GRACE.sub)]  # any identity the owner chooses
    assert "Unlink Example ID" in text(browser.get("/account/connections"))
    wait_for_mail(outbox, "ada@example.com", lambda m: "was linked" in m.text)


def test_an_identity_linked_to_another_account_is_not_linked_again(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    new_account(site.test_client(), oidc_provider)  # ada's identity, on her account
    make_user(site, "grace", "grace@example.com")
    browser = site.test_client()
    assert logged_in(browser, "grace", PASSWORD)
    response = callback(browser, oidc_provider.consent(start(browser, intent="link"), ADA))
    assert path_of(response) == "/account/connections"
    assert "linked already to another account" in text(browser.get("/account/connections"))
    assert [link[0] for link in links(site)] == [user_id(site, "ada@example.com")]


def test_the_last_way_in_cannot_be_unlinked(
    site: Flask, oidc_provider: OidcProvider, outbox: Any
) -> None:
    browser = site.test_client()
    new_account(browser, oidc_provider)
    ada = user_id(site, "ada@example.com")
    unlink = submit(browser, "/account/connections", {"provider": IDP})
    assert path_of(unlink) == "/account/connections"
    assert "only way to sign in" in text(browser.get("/account/connections"))
    assert len(links(site)) == 1
    # With a password, it can go.
    with site.app_context():
        state = get_state(site)
        user = state.accounts.get(ada)
        assert user is not None
        state.accounts.set_password(user, "a brand new passphrase")
    assert logged_in(browser, "ada", "a brand new passphrase")
    submit(browser, "/account/connections", {"provider": IDP})
    assert links(site) == []
    assert rows(site, Event.PROVIDER_UNLINKED)[-1]["provider"] == IDP
    wait_for_mail(outbox, "ada@example.com", lambda m: "was unlinked" in m.text)


def test_a_provider_only_account_re_authenticates_through_its_provider(
    site: Flask, oidc_provider: OidcProvider, clock: Any
) -> None:
    browser = site.test_client()
    new_account(browser, oidc_provider)
    with browser.session_transaction() as session:
        session["_portcullis_auth_at"] = 0  # long ago: no longer fresh
    assert path_of(browser.get("/account/connections")) == "/reauthenticate"
    assert "Confirm with Example ID" in text(browser.get("/reauthenticate"))
    response = callback(
        browser, oidc_provider.consent(start(browser, intent="reauthenticate"), ADA)
    )
    assert response.status_code == 302
    assert browser.get("/account/connections").status_code == 200


def test_export_lists_the_links_and_deletion_removes_them(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    make_user(site)
    browser = site.test_client()
    via_provider(browser, oidc_provider)
    assert logged_in(browser, "ada", PASSWORD)
    submit(browser, f"/login/oauth/{IDP}/confirm", {"decision": "link"})
    exported = browser.get("/account/export").get_json()
    assert [(p["provider"], p["subject"]) for p in exported["sign_in_providers"]] == [
        (IDP, ADA.sub)
    ]
    assert submit(browser, "/account/delete", {"password": PASSWORD}).status_code == 302
    assert links(site) == []


def test_what_someone_left_waiting_in_the_browser_is_linked_only_if_the_owner_says_so(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    """An attacker signs in with a provider account carrying ada's address, reaches the
    "you already have an account" page, and leaves; ada signs in at the same browser."""
    make_user(site)
    browser = site.test_client()
    mallory = OidcUser("mallory-9", "ada@example.com", True, "Mallory", "mallory")
    assert path_of(via_provider(browser, oidc_provider, mallory)) == f"/login/oauth/{IDP}/existing"
    assert path_of(login(browser, "ada", PASSWORD)) == f"/login/oauth/{IDP}/confirm"
    assert links(site) == []  # nothing yet: ada is asked
    declined = submit(browser, f"/login/oauth/{IDP}/confirm", {"decision": "skip"})
    assert declined.status_code == 302
    assert links(site) == []
    assert signed_in(browser)
    assert browser.get(f"/login/oauth/{IDP}/confirm").status_code == 302  # asked once


def test_a_reset_by_email_unlinks_every_provider(site: Flask, oidc_provider: OidcProvider) -> None:
    """Whoever linked a provider account of theirs while the address was not the owner's
    keeps no way in once the owner resets the password through the address."""
    new_account(site.test_client(), oidc_provider)
    ada = user_id(site, "ada@example.com")
    reset_by_link(site, ada, "a brand new passphrase")
    assert links(site) == []
    assert rows(site, Event.PROVIDER_UNLINKED)[-1]["scope"] == "reset"
    fresh = site.test_client()
    assert path_of(via_provider(fresh, oidc_provider)) == f"/login/oauth/{IDP}/existing"


def test_re_authenticating_asks_the_provider_to_sign_in_again(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    browser = site.test_client()
    new_account(browser, oidc_provider)
    query = parse_qs(urlsplit(start(browser, intent="reauthenticate")).query)
    assert query["prompt"] == ["login"]
    assert query["max_age"] == ["0"]
    url = oidc_provider.consent(start(browser, intent="reauthenticate"), ADA)
    with oidc_provider.forged_id_tokens(claims={"auth_time": 1_000_000_000}):
        assert_refused(callback(browser, url), words="did not ask for your sign-in again")


def test_github_cannot_stand_in_for_the_password_on_re_authentication(
    site: Flask, github_provider: GitHubProvider
) -> None:
    make_user(site)
    browser = site.test_client()
    assert logged_in(browser, "ada", PASSWORD)
    token = csrf_token(browser, "/reauthenticate")
    response = browser.post(
        "/login/oauth/github", data={"csrf_token": token, "intent": "reauthenticate"}
    )
    assert path_of(response) == "/reauthenticate"


def test_a_taken_address_looks_like_a_new_one_when_verification_is_required(
    build: Build, oidc_provider: OidcProvider, outbox: Any
) -> None:
    site = build(PORTCULLIS_EMAIL_VERIFICATION="required")
    make_user(site)
    unverified = OidcUser("mallory-2", "ada@example.com", False, "Mallory", "mallory")
    browser = site.test_client()
    assert path_of(via_provider(browser, oidc_provider, unverified)) == f"/login/oauth/{IDP}/signup"
    answer = submit(browser, SIGNUP, {"username": "mallory", "email": "ada@example.com"})
    assert answer.status_code == 200
    assert "Check your inbox" in text(answer)
    assert links(site) == []
    wait_for_mail(outbox, "ada@example.com", lambda m: "tried to sign up" in m.subject)


def test_an_account_without_a_password_deletes_itself_after_re_authenticating(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    browser = site.test_client()
    new_account(browser, oidc_provider)
    page = text(browser.get("/account/delete"))
    assert 'name="password"' not in page  # it has none to give
    assert submit(browser, "/account/delete", {}).status_code == 302
    assert links(site) == []
    with site.app_context():
        assert get_state(site).accounts.get_by_email("ada@example.com") is None


def test_an_account_without_a_password_must_be_fresh_to_delete(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    browser = site.test_client()
    new_account(browser, oidc_provider)
    with browser.session_transaction() as session:
        session["_portcullis_auth_at"] = 0
    assert path_of(browser.get("/account/delete")) == "/reauthenticate"


def test_the_owner_with_a_second_factor_links_after_giving_it(
    site: Flask, oidc_provider: OidcProvider, clock: FakeClock
) -> None:
    ada = make_user(site)
    secret = enable_totp(site, ada, clock)
    browser = site.test_client()
    via_provider(browser, oidc_provider)
    assert path_of(login(browser, "ada", PASSWORD)) == "/login/two-factor"
    assert links(site) == []
    done = submit(browser, "/login/two-factor", {"code": code_for(secret, clock)})
    assert path_of(done) == f"/login/oauth/{IDP}/confirm"  # still waiting, now asked
    submit(browser, f"/login/oauth/{IDP}/confirm", {"decision": "link"})
    assert links(site) == [(ada, IDP, ADA.sub)]


def test_a_waiting_identity_expires(
    site: Flask, oidc_provider: OidcProvider, clock: FakeClock
) -> None:
    make_user(site)
    browser = site.test_client()
    via_provider(browser, oidc_provider)
    clock.advance(minutes=16)
    assert path_of(login(browser, "ada", PASSWORD)) != f"/login/oauth/{IDP}/confirm"
    assert links(site) == []


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "https://evil.example/"])
def test_next_through_the_provider_stays_on_the_site(
    site: Flask, oidc_provider: OidcProvider, target: str
) -> None:
    new_account(site.test_client(), oidc_provider)
    browser = site.test_client()
    token = csrf_token(browser, "/login")
    started = browser.post(
        f"/login/oauth/{IDP}?next={quote(target)}", data={"csrf_token": token, "intent": "sign-in"}
    )
    response = callback(browser, oidc_provider.consent(started.headers["Location"], ADA))
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).netloc in ("", "localhost")
    assert not response.headers["Location"].startswith("//")


def test_a_passkey_is_a_way_in_so_the_only_link_may_go(
    site: Flask, oidc_provider: OidcProvider
) -> None:
    browser = site.test_client()
    new_account(browser, oidc_provider)
    ada = user_id(site, "ada@example.com")
    with site.app_context():
        state = get_state(site)
        Passkey = state.models.Passkey
        state.db.session.add(
            Passkey(
                user_id=ada,
                credential_key="k" * 64,
                credential_id="cred",
                public_key=b"key",
                name="Phone",
                created_at=state.clock(),
            )
        )
        state.db.session.commit()
    submit(browser, "/account/connections", {"provider": IDP})
    assert links(site) == []


# -- GitHub ----------------------------------------------------------------------------------


def test_github_signs_up_with_its_primary_verified_address(
    site: Flask, github_provider: GitHubProvider
) -> None:
    github_provider.add_user(
        GitHubUser(
            583231,
            "octocat",
            "The Octocat",
            emails=(
                GitHubEmail("old@example.com", False, True, None),
                GitHubEmail("octo@example.com", True, True, "public"),
            ),
        )
    )
    browser = site.test_client()
    url = github_provider.consent(start(browser, "github"), "octocat")
    assert path_of(callback(browser, url)) == "/login/oauth/github/signup"
    form = text(browser.get("/login/oauth/github/signup"))
    assert 'value="octocat"' in form
    assert 'value="octo@example.com"' in form
    done = submit(
        browser, "/login/oauth/github/signup", {"username": "octocat", "email": "octo@example.com"}
    )
    assert done.status_code == 302
    assert signed_in(browser)
    assert links(site) == [(user_id(site, "octo@example.com"), "github", "583231")]


def test_github_without_a_verified_primary_address_never_matches(
    site: Flask, github_provider: GitHubProvider
) -> None:
    make_user(site, "octo", "octo@example.com")
    github_provider.add_user(
        GitHubUser(
            9, "imposter", None, emails=(GitHubEmail("octo@example.com", True, False, None),)
        )
    )
    browser = site.test_client()
    url = github_provider.consent(start(browser, "github"), "imposter")
    assert path_of(callback(browser, url)) == "/login/oauth/github/signup"


def test_a_github_token_endpoint_that_fails_ends_on_a_clear_page(
    site: Flask, github_provider: GitHubProvider
) -> None:
    github_provider.add_user(GitHubUser(7, "hubot", None, emails=()))
    browser = site.test_client()
    url = github_provider.consent(start(browser, "github"), "hubot")
    with github_provider.failing("access_token"):
        response = callback(browser, url)
    assert response.status_code == 502  # GitHub's token endpoint is down
    assert "Sign-in did not work" in text(response)


# -- no 500 from any callback input ----------------------------------------------------------

FUZZ = [
    "",
    "?code=",
    "?state=",
    "?code=a&state=b&iss=c",
    "?error=",
    "?error=access_denied",
    "?error=" + "x" * 5000,
    "?code=" + "c" * 100_000 + "&state=s",
    "?state=a&state=b&code=c&code=d",
    "?iss=%00&state=%ff%fe&code=%e2%80%ae",
    "?error=server_error&error_description=%3Cscript%3E",
    "?state[]=1&code[x]=2",
]


@pytest.mark.parametrize("query", FUZZ)
def test_no_callback_input_gives_a_500(site: Flask, query: str) -> None:
    browser = site.test_client()
    start(browser)  # a live flow in this browser, which bad input must not get through
    for path in (f"/login/oauth/{IDP}/callback", "/login/oauth/github/callback"):
        response = browser.get(path + query)
        assert response.status_code in (400, 414, 431), (query[:80], response.status_code)
    assert not signed_in(browser)


# -- helpers ---------------------------------------------------------------------------------


def enable_totp(app: Flask, account: int, clock: FakeClock) -> str:
    """Turn on TOTP through the service and move past the enabling code; return the secret."""
    with app.app_context():
        state = get_state(app)
        user = state.accounts.get(account)
        assert user is not None
        secret = state.two_factor.begin(user).secret
        state.two_factor.enable(user, secret, code_for(secret, clock))
    clock.advance(seconds=4 * STEP)
    return secret


def test_the_google_preset_needs_only_the_clients_id_and_secret(
    make_demo_app: AppFactory,
) -> None:
    app = make_demo_app(
        PORTCULLIS_OAUTH_PROVIDERS={"google": {"client_id": "g-id", "client_secret": "g-secret"}}
    )
    [google] = get_state(app).settings.oauth_providers
    assert google.server_metadata_url == (
        "https://accounts.google.com/.well-known/openid-configuration"
    )
    assert google.label == "Google"
    assert set(google.scope.split()) == {"openid", "email", "profile"}
    policy = app.test_client().get("/login").headers["Content-Security-Policy"]
    assert "https://accounts.google.com" in policy  # form-action: the button's redirect
