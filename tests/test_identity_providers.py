"""The identity providers the sign-in tests run against behave like the real thing: a full
authorization code flow with PKCE through Authlib's own client, ID tokens that verify against
the provider's JWKS (joserfc), and each refusal the product's tests rely on."""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet

from .identity_providers import (
    HTTP,
    GitHubEmail,
    GitHubProvider,
    GitHubUser,
    OAuthClient,
    OidcProvider,
    OidcUser,
    ProviderPage,
    dead_url,
)

CALLBACK = "http://localhost/login/oauth/idp/callback"
ADA = OidcUser(
    "ada-1815", "ada@example.com", email_verified=True, name="Ada", preferred_username="ada"
)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# -- OpenID Connect ------------------------------------------------------------------------


@pytest.fixture
def oidc_client(oidc_provider: OidcProvider) -> OAuthClient:
    return oidc_provider.register_client([CALLBACK])


def session_for(client: OAuthClient, **kwargs: Any) -> Any:
    return OAuth2Session(
        client.client_id,
        client.client_secret,
        scope="openid email profile",
        redirect_uri=CALLBACK,
        code_challenge_method="S256",
        **kwargs,
    )


def start(oidc_provider: OidcProvider, session: Any) -> tuple[str, str, str, str]:
    """An authorization URL with state, nonce and PKCE; returns (url, state, nonce, verifier)."""
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    endpoint = oidc_provider.metadata()["authorization_endpoint"]
    url, state = session.create_authorization_url(endpoint, code_verifier=verifier, nonce=nonce)
    return url, state, nonce, verifier


def token_request(
    oidc_provider: OidcProvider, client: OAuthClient, *, timeout: float = 10.0, **fields: str
) -> httpx.Response:
    """POST to the token endpoint by hand (client_secret_basic)."""
    return HTTP.post(
        oidc_provider.metadata()["token_endpoint"],
        data={"grant_type": "authorization_code", "redirect_uri": CALLBACK, **fields},
        auth=(client.client_id, client.client_secret),
        timeout=timeout,
    )


def verify_id_token(
    oidc_provider: OidcProvider, client: OAuthClient, id_token: str, nonce: str
) -> dict[str, Any]:
    """Check an ID token as a relying party must (OpenID Connect Core 3.1.3.7)."""
    keys = KeySet.import_key_set(HTTP.get(oidc_provider.metadata()["jwks_uri"]).json())
    token = jwt.decode(id_token, keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": oidc_provider.issuer},
        aud={"essential": True, "value": client.client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True},
    ).validate(token.claims)
    return token.claims


def test_discovery_document_describes_the_provider(oidc_provider: OidcProvider) -> None:
    metadata = oidc_provider.metadata()
    assert metadata["issuer"] == oidc_provider.issuer
    for endpoint in ("authorization", "token", "userinfo", "registration"):
        assert metadata[f"{endpoint}_endpoint"].startswith(oidc_provider.issuer + "/")
    assert metadata["jwks_uri"].startswith(oidc_provider.issuer + "/")
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True  # RFC 9207
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"openid", "email", "profile"} <= set(metadata["scopes_supported"])


def test_jwks_publishes_the_public_signing_key(oidc_provider: OidcProvider) -> None:
    keys = HTTP.get(oidc_provider.metadata()["jwks_uri"]).json()["keys"]
    assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [("RSA", "RS256", "sig")]
    assert keys[0]["kid"]
    assert "d" not in keys[0], "the JWKS must not carry the private key"


def test_code_flow_with_pkce_and_nonce(
    oidc_provider: OidcProvider, oidc_client: OAuthClient
) -> None:
    session = session_for(oidc_client)
    url, state, nonce, verifier = start(oidc_provider, session)
    assert query(url)["code_challenge_method"] == "S256"

    back = oidc_provider.consent(url, ADA)

    assert back.startswith(CALLBACK + "?")
    params = query(back)
    assert params["state"] == state
    assert params["iss"] == oidc_provider.issuer  # RFC 9207
    token = session.fetch_token(
        oidc_provider.metadata()["token_endpoint"],
        authorization_response=back,
        code_verifier=verifier,
    )
    claims = verify_id_token(oidc_provider, oidc_client, token["id_token"], nonce)
    assert claims["sub"] == "ada-1815"
    assert claims["email"] == "ada@example.com"
    assert claims["email_verified"] is True
    assert (claims["name"], claims["preferred_username"]) == ("Ada", "ada")
    assert claims["iat"] <= time.time() < claims["exp"]
    userinfo = session.get(oidc_provider.metadata()["userinfo_endpoint"]).json()
    assert userinfo["sub"] == "ada-1815"
    assert userinfo["email"] == "ada@example.com"


def test_unverified_email_is_said_so(oidc_provider: OidcProvider, oidc_client: OAuthClient) -> None:
    session = session_for(oidc_client)
    url, _, nonce, verifier = start(oidc_provider, session)
    back = oidc_provider.consent(url, OidcUser("eve-1", "ada@example.com"))
    token = token_request(
        oidc_provider, oidc_client, code=query(back)["code"], code_verifier=verifier
    )
    claims = verify_id_token(oidc_provider, oidc_client, token.json()["id_token"], nonce)
    assert (claims["email"], claims["email_verified"]) == ("ada@example.com", False)


@pytest.mark.parametrize(
    "verifier",
    [
        pytest.param(secrets.token_urlsafe(48), id="another-verifier"),
        pytest.param(None, id="no-verifier"),
    ],
)
def test_token_endpoint_refuses_a_code_without_its_verifier(
    oidc_provider: OidcProvider, oidc_client: OAuthClient, verifier: str | None
) -> None:
    url, *_ = start(oidc_provider, session_for(oidc_client))
    code = query(oidc_provider.consent(url, ADA))["code"]
    if verifier is None:
        response = token_request(oidc_provider, oidc_client, code=code)
    else:
        response = token_request(oidc_provider, oidc_client, code=code, code_verifier=verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_a_code_is_used_once(oidc_provider: OidcProvider, oidc_client: OAuthClient) -> None:
    url, _, _, verifier = start(oidc_provider, session_for(oidc_client))
    code = query(oidc_provider.consent(url, ADA))["code"]
    assert token_request(oidc_provider, oidc_client, code=code, code_verifier=verifier).is_success
    again = token_request(oidc_provider, oidc_client, code=code, code_verifier=verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_authorization_without_pkce_is_refused(
    oidc_provider: OidcProvider, oidc_client: OAuthClient
) -> None:
    url, state = session_for(oidc_client).create_authorization_url(
        oidc_provider.metadata()["authorization_endpoint"], nonce="n"
    )
    params = query(oidc_provider.consent(url, ADA))
    assert params["error"] == "invalid_request"
    assert (params["state"], params["iss"]) == (state, oidc_provider.issuer)


@pytest.mark.parametrize("error", ["access_denied", "invalid_request", "temporarily_unavailable"])
def test_consent_refused_comes_back_as_an_error(
    oidc_provider: OidcProvider, oidc_client: OAuthClient, error: str
) -> None:
    url, state, *_ = start(oidc_provider, session_for(oidc_client))
    back = oidc_provider.deny(url, error)
    assert back.startswith(CALLBACK + "?")
    params = query(back)
    assert params["error"] == error
    assert "code" not in params
    assert (params["state"], params["iss"]) == (state, oidc_provider.issuer)


def test_unregistered_redirect_uri_gets_a_page_not_a_redirect(
    oidc_provider: OidcProvider, oidc_client: OAuthClient
) -> None:
    url, *_ = start(oidc_provider, session_for(oidc_client))
    with pytest.raises(ProviderPage) as page:
        oidc_provider.consent(url.replace("localhost", "evil.example"), ADA)
    assert page.value.status == 400


def test_token_endpoint_resets_the_connection_on_request(
    oidc_provider: OidcProvider, oidc_client: OAuthClient
) -> None:
    url, _, _, verifier = start(oidc_provider, session_for(oidc_client))
    code = query(oidc_provider.consent(url, ADA))["code"]
    # Closed with no answer at once (a FIN or, as timing has it, an RST): no timeout needed.
    reset = (httpx.RemoteProtocolError, httpx.ReadError)
    with oidc_provider.token_endpoint_fails("reset"), pytest.raises(reset):
        token_request(oidc_provider, oidc_client, code=code, code_verifier=verifier, timeout=2.0)
    # Afterwards the endpoint answers again (the code was never used).
    assert token_request(oidc_provider, oidc_client, code=code, code_verifier=verifier).is_success


@pytest.mark.parametrize(
    ("mode", "status", "content_type"),
    [("error", 503, "text/html"), ("garbage", 200, "text/html")],
)
def test_token_endpoint_answers_garbage_on_request(
    oidc_provider: OidcProvider,
    oidc_client: OAuthClient,
    mode: Literal["error", "garbage"],
    status: int,
    content_type: str,
) -> None:
    url, _, _, verifier = start(oidc_provider, session_for(oidc_client))
    code = query(oidc_provider.consent(url, ADA))["code"]
    with oidc_provider.token_endpoint_fails(mode):
        response = token_request(oidc_provider, oidc_client, code=code, code_verifier=verifier)
    assert response.status_code == status
    assert response.headers["content-type"].startswith(content_type)
    assert token_request(oidc_provider, oidc_client, code=code, code_verifier=verifier).is_success


def test_slow_token_endpoint_times_a_client_out(
    oidc_provider: OidcProvider, oidc_client: OAuthClient
) -> None:
    with oidc_provider.token_endpoint_fails("slow", delay=1.0), pytest.raises(httpx.ReadTimeout):
        HTTP.post(oidc_provider.metadata()["token_endpoint"], timeout=0.2)


NOW = int(time.time())


@pytest.mark.parametrize(
    ("forgery", "refusal"),
    [
        pytest.param({"claims": {"aud": "someone-else"}}, InvalidClaimError, id="aud"),
        pytest.param({"claims": {"iss": "http://127.0.0.1:1"}}, InvalidClaimError, id="iss"),
        pytest.param({"claims": {"exp": NOW - 3600}}, ExpiredTokenError, id="exp"),
        pytest.param({"claims": {"iat": NOW + 3600}}, InvalidClaimError, id="iat-future"),
        pytest.param({"claims": {"nonce": "replayed"}}, InvalidClaimError, id="nonce"),
        pytest.param({"remove": ["nonce"]}, JoseError, id="no-nonce"),
        pytest.param({"signature": "foreign"}, BadSignatureError, id="signature"),
        pytest.param({"signature": "none"}, UnsupportedAlgorithmError, id="alg-none"),
    ],
)
def test_forged_id_tokens_are_caught_by_a_careful_client(
    oidc_provider: OidcProvider,
    oidc_client: OAuthClient,
    forgery: dict[str, Any],
    refusal: type[Exception],
) -> None:
    url, _, nonce, verifier = start(oidc_provider, session_for(oidc_client))
    code = query(oidc_provider.consent(url, ADA))["code"]
    with oidc_provider.forged_id_tokens(**forgery):
        response = token_request(oidc_provider, oidc_client, code=code, code_verifier=verifier)
    assert response.is_success, response.text
    with pytest.raises(refusal):
        verify_id_token(oidc_provider, oidc_client, response.json()["id_token"], nonce)


def test_forgery_stops_with_its_block(
    oidc_provider: OidcProvider, oidc_client: OAuthClient
) -> None:
    with oidc_provider.forged_id_tokens(claims={"aud": "someone-else"}):
        pass
    url, _, nonce, verifier = start(oidc_provider, session_for(oidc_client))
    code = query(oidc_provider.consent(url, ADA))["code"]
    response = token_request(oidc_provider, oidc_client, code=code, code_verifier=verifier)
    verify_id_token(oidc_provider, oidc_client, response.json()["id_token"], nonce)


# -- GitHub --------------------------------------------------------------------------------

GITHUB_CALLBACK = "http://localhost/login/oauth/github/callback"
OCTOCAT = GitHubUser(
    583231,
    "octocat",
    "The Octocat",
    (
        GitHubEmail("octocat@github.com", primary=True, verified=True, visibility="public"),
        GitHubEmail("cat@example.com", verified=False, visibility="private"),
    ),
)


@pytest.fixture
def github_app(github_provider: GitHubProvider) -> OAuthClient:
    github_provider.add_user(OCTOCAT)
    return github_provider.register_app(GITHUB_CALLBACK)


def github_session(app: OAuthClient, scope: str) -> Any:
    return OAuth2Session(
        app.client_id,
        app.client_secret,
        scope=scope,
        redirect_uri=GITHUB_CALLBACK,
        code_challenge_method="S256",
    )


def github_code(
    github_provider: GitHubProvider, app: OAuthClient, scope: str = "read:user user:email"
) -> tuple[Any, str, str]:
    """Authorize as octocat; returns (session, redirect back, verifier)."""
    session = github_session(app, scope)
    verifier = secrets.token_urlsafe(48)
    url, _ = session.create_authorization_url(github_provider.authorize_url, code_verifier=verifier)
    return session, github_provider.consent(url, "octocat"), verifier


def github_token(
    github_provider: GitHubProvider, app: OAuthClient, **fields: str
) -> httpx.Response:
    return HTTP.post(
        github_provider.access_token_url,
        data={"client_id": app.client_id, "client_secret": app.client_secret, **fields},
        headers={"Accept": "application/json"},
    )


def test_github_code_flow_with_pkce(
    github_provider: GitHubProvider, github_app: OAuthClient
) -> None:
    session, back, verifier = github_code(github_provider, github_app)
    assert back.startswith(GITHUB_CALLBACK + "?")
    token = session.fetch_token(
        github_provider.access_token_url,
        authorization_response=back,
        code_verifier=verifier,
    )
    assert token["token_type"] == "bearer"
    assert token["scope"] == "read:user,user:email"
    user = session.get(github_provider.api_base_url + "user").json()
    assert (user["id"], user["login"], user["name"]) == (583231, "octocat", "The Octocat")
    assert user["email"] == "octocat@github.com"
    emails = session.get(github_provider.api_base_url + "user/emails").json()
    assert emails == [
        {"email": "octocat@github.com", "primary": True, "verified": True, "visibility": "public"},
        {"email": "cat@example.com", "primary": False, "verified": False, "visibility": "private"},
    ]


def test_github_answers_a_form_unless_asked_for_json(
    github_provider: GitHubProvider, github_app: OAuthClient
) -> None:
    _, back, verifier = github_code(github_provider, github_app)
    response = HTTP.post(
        github_provider.access_token_url,
        data={
            "client_id": github_app.client_id,
            "client_secret": github_app.client_secret,
            "code": query(back)["code"],
            "code_verifier": verifier,
        },
    )
    assert response.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert parse_qs(response.text)["token_type"] == ["bearer"]


def test_github_private_email_is_null_on_the_profile(
    github_provider: GitHubProvider, github_app: OAuthClient
) -> None:
    github_provider.add_user(
        GitHubUser(2, "hidden", None, (GitHubEmail("h@example.com", True, True),))
    )
    session = github_session(github_app, "user:email")
    verifier = secrets.token_urlsafe(48)
    url, _ = session.create_authorization_url(github_provider.authorize_url, code_verifier=verifier)
    back = github_provider.consent(url, "hidden")
    session.fetch_token(
        github_provider.access_token_url, authorization_response=back, code_verifier=verifier
    )
    assert session.get(github_provider.api_base_url + "user").json()["email"] is None


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"client_secret": "0" * 40}, "incorrect_client_credentials"),
        ({"code_verifier": secrets.token_urlsafe(48)}, "bad_verification_code"),
        ({"code_verifier": ""}, "bad_verification_code"),
        ({"redirect_uri": "http://localhost/login/oauth/github/other"}, "redirect_uri_mismatch"),
        ({"code": "0" * 20}, "bad_verification_code"),
    ],
)
def test_github_token_refusals(
    github_provider: GitHubProvider, github_app: OAuthClient, change: dict[str, str], error: str
) -> None:
    _, back, verifier = github_code(github_provider, github_app)
    fields = {"code": query(back)["code"], "code_verifier": verifier, **change}
    response = github_token(github_provider, github_app, **fields)
    assert response.status_code == 200  # GitHub answers its errors with 200
    assert response.json()["error"] == error


def test_github_refusal_raises_in_authlib(
    github_provider: GitHubProvider, github_app: OAuthClient
) -> None:
    session, back, _ = github_code(github_provider, github_app)
    with pytest.raises(OAuthError) as refused:
        session.fetch_token(
            github_provider.access_token_url,
            authorization_response=back,
            code_verifier=secrets.token_urlsafe(48),
        )
    assert refused.value.error == "bad_verification_code"


def test_github_code_is_used_once(github_provider: GitHubProvider, github_app: OAuthClient) -> None:
    _, back, verifier = github_code(github_provider, github_app)
    code = query(back)["code"]
    assert (
        "access_token"
        in github_token(github_provider, github_app, code=code, code_verifier=verifier).json()
    )
    again = github_token(github_provider, github_app, code=code, code_verifier=verifier).json()
    assert again["error"] == "bad_verification_code"


def test_github_deny_comes_back_as_access_denied(
    github_provider: GitHubProvider, github_app: OAuthClient
) -> None:
    url, state = github_session(github_app, "user:email").create_authorization_url(
        github_provider.authorize_url
    )
    params = query(github_provider.deny(url))
    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert "code" not in params


def test_github_foreign_redirect_uri_goes_to_the_callback_with_an_error(
    github_provider: GitHubProvider, github_app: OAuthClient
) -> None:
    url = (
        github_provider.authorize_url
        + "?"
        + urlencode(
            {
                "client_id": github_app.client_id,
                "redirect_uri": "http://evil.example/cb",
                "state": "s",
            }
        )
    )
    back = github_provider.consent(url, "octocat")
    assert back.startswith(GITHUB_CALLBACK + "?")
    assert query(back)["error"] == "redirect_uri_mismatch"


def test_github_unknown_client_gets_a_404(github_provider: GitHubProvider) -> None:
    with pytest.raises(ProviderPage) as page:
        github_provider.consent(github_provider.authorize_url + "?client_id=nobody", "octocat")
    assert page.value.status == 404


def test_github_api_needs_a_token_and_the_email_scope(
    github_provider: GitHubProvider, github_app: OAuthClient
) -> None:
    api = github_provider.api_base_url
    assert HTTP.get(api + "user").status_code == 401
    bad = HTTP.get(api + "user", headers={"Authorization": "Bearer gho_nope"})
    assert (bad.status_code, bad.json()["message"]) == (401, "Bad credentials")
    session, back, verifier = github_code(github_provider, github_app, scope="read:user")
    session.fetch_token(
        github_provider.access_token_url, authorization_response=back, code_verifier=verifier
    )
    assert session.get(api + "user").status_code == 200
    assert session.get(api + "user/emails").status_code == 404


def test_github_endpoint_fails_on_request(
    github_provider: GitHubProvider, github_app: OAuthClient
) -> None:
    _, back, verifier = github_code(github_provider, github_app)
    code = query(back)["code"]
    with github_provider.failing("access_token"):
        assert (
            github_token(github_provider, github_app, code=code, code_verifier=verifier).status_code
            == 503
        )
    assert (
        "access_token"
        in github_token(github_provider, github_app, code=code, code_verifier=verifier).json()
    )


def test_dead_url_refuses_connections() -> None:
    with pytest.raises(httpx.ConnectError):
        HTTP.post(dead_url("/login/oauth/access_token"))
