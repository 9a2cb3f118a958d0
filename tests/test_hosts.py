"""Links in mails only ever point to a trusted host (OWASP WSTG-INPV-17).

An attacker who sends ``Host: attacker.example`` with a victim's address must
not get the victim mailed a reset link to the attacker's site. Each path that
mails a link is tried with forged and malformed hosts (refused with 400, no
mail) and then with a trusted one (the mail goes, its link on that host), so
each case shows it would mail if the host were let through.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.exceptions import ConfigurationError
from flask_portcullis.hosts import LOCAL_HOSTS, trusted_hosts

from .conftest import CSRF_INPUT, PASSWORD, AppFactory, Outbox, login, make_app, make_user
from .servers import (
    AppServer,
    Browser,
    gunicorn_options,
    launch,
    server_environment,
    wait_until_healthy,
)

FORGED = ("attacker.example:8443", "attacker.example", "127.0.0.1:5077@evil.example")
MALFORMED = ("evil.example#", "localhost/evil", "local host", "localhost:99999")


def csrf_for(client: FlaskClient, path: str) -> str:
    """The form's token, fetched over a trusted host as the victim's page would be."""
    match = CSRF_INPUT.search(client.get(path).get_data(as_text=True))
    assert match, f"no form on {path}"
    return match.group(1)


def form(path: str, **fields: str) -> Callable[[FlaskClient, str], TestResponse]:
    def send(client: FlaskClient, host: str) -> TestResponse:
        data = {"csrf_token": csrf_for(client, path), **fields}
        return client.post(path, data=data, headers={"Host": host})

    return send


def api(
    path: str, *, token: bool = False, **fields: str
) -> Callable[[FlaskClient, str], TestResponse]:
    def send(client: FlaskClient, host: str) -> TestResponse:
        headers = {"Host": host}
        if token:
            pair = client.post("/api/v1/login", json={"identity": "ada", "password": PASSWORD})
            headers["Authorization"] = f"Bearer {pair.get_json()['access_token']}"
        return client.post(f"/api/v1{path}", json=fields, headers=headers)

    return send


NEW: dict[str, Any] = {"username": "grace", "email": "grace@example.com", "password": PASSWORD}
# (path that mails a link, signed in as ada?, who gets the mail, the link's path)
LINK_PATHS = {
    "form forgot-password": (
        form("/forgot-password", email="ada@example.com"),
        False,
        "ada@example.com",
        "/reset-password/",
    ),
    "form register": (
        form("/register", **NEW, password_confirm=PASSWORD),
        False,
        "grace@example.com",
        "/verify-email/",
    ),
    "form resend verification": (
        form("/verify-email"),
        True,
        "ada@example.com",
        "/verify-email/",
    ),
    "form change email": (
        form("/account/email", email="ada@new.example.com", password=PASSWORD),
        True,
        "ada@new.example.com",
        "/confirm-email/",
    ),
    "api forgot-password": (
        api("/forgot-password", email="ada@example.com"),
        False,
        "ada@example.com",
        "/reset-password/",
    ),
    "api register": (api("/register", **NEW), False, "grace@example.com", "/verify-email/"),
    "api resend verification": (
        api("/verify-email/resend", email="ada@example.com"),
        False,
        "ada@example.com",
        "/verify-email/",
    ),
    "api request verification": (
        api("/verify-email/request", token=True),
        False,
        "ada@example.com",
        "/verify-email/",
    ),
}


@pytest.fixture
def ada(app: Flask, client: FlaskClient) -> FlaskClient:
    make_user(app)
    return client


@pytest.mark.parametrize("case", LINK_PATHS)
def test_a_forged_host_gets_400_and_no_mail_a_trusted_one_gets_its_link(
    ada: FlaskClient, outbox: Outbox, case: str
) -> None:
    send, signed_in, recipient, link = LINK_PATHS[case]
    if signed_in:
        assert login(ada).status_code == 302
    for host in (*FORGED, *MALFORMED):
        response = send(ada, host)
        assert response.status_code == 400, (host, response.status_code)
        if case.startswith("api"):
            assert response.mimetype == "application/problem+json"
            assert response.get_json()["code"] == "untrusted_host"
        assert "attacker" not in response.get_data(as_text=True)  # the host is not echoed
    time.sleep(0.3)  # reset mails go out on a worker thread: give a wrong one time to land
    assert outbox.mails == [], [m.text for m in outbox.mails]

    response = send(ada, "localhost:5000")
    assert response.status_code < 400, response.get_data(as_text=True)
    [mail] = outbox.wait_for(recipient)
    urls = re.findall(r"https?://\S+", mail.text)
    assert any(url.startswith(f"http://localhost:5000{link}") for url in urls), mail.text
    assert all(url.startswith("http://localhost:5000/") for url in urls), urls


def test_any_port_of_the_local_names_is_trusted_by_default(app: Flask, client: FlaskClient) -> None:
    assert app.config["TRUSTED_HOSTS"] == list(LOCAL_HOSTS)
    assert get_state(app).hosts.source == "default"
    for host in ("localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:8000"):
        assert client.get("/login", headers={"Host": host}).status_code == 200, host


def test_a_page_for_an_untrusted_host_is_plain_html(client: FlaskClient) -> None:
    """The HTML answer needs no URL building (Flask has no URL adapter for that host)."""
    response = client.get("/account", headers={"Host": "attacker.example"})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "does not answer to that host name" in response.get_data(as_text=True)


def test_server_name_fixes_the_links_and_the_trusted_host(
    make_demo_app: AppFactory, outbox: Outbox
) -> None:
    app = make_demo_app(
        SERVER_NAME="accounts.example.org:8443",
        PREFERRED_URL_SCHEME="https",
    )
    make_user(app)
    client = app.test_client()
    reset = api("/forgot-password", email="ada@example.com")
    assert reset(client, "attacker.example").status_code == 400
    assert reset(client, "localhost").status_code == 400  # only the site's own name now
    assert reset(client, "accounts.example.org:8443").status_code == 202
    [mail] = outbox.wait_for("ada@example.com")
    assert "https://accounts.example.org:8443/reset-password/" in mail.text


def test_trusted_hosts_with_subdomains_mail_links_on_the_request_host(
    make_demo_app: AppFactory, outbox: Outbox
) -> None:
    app = make_demo_app(TRUSTED_HOSTS=[".example.org"])
    make_user(app)
    client = app.test_client()
    reset = api("/forgot-password", email="ada@example.com")
    assert reset(client, "example.org.attacker.example").status_code == 400
    assert reset(client, "eu.example.org").status_code == 202
    [mail] = outbox.wait_for("ada@example.com")
    assert "http://eu.example.org/reset-password/" in mail.text


@pytest.mark.parametrize(
    ("config", "names", "source"),
    [
        ({}, LOCAL_HOSTS, "default"),
        ({"SERVER_NAME": "example.com"}, ("example.com",), "SERVER_NAME"),
        ({"SERVER_NAME": "example.com:8443"}, ("example.com",), "SERVER_NAME"),
        (
            {"SERVER_NAME": "example.com", "TRUSTED_HOSTS": ["a.example.com", ".example.org"]},
            ("a.example.com", ".example.org"),
            "TRUSTED_HOSTS",
        ),
    ],
)
def test_trusted_hosts_come_from_flask_settings(
    config: dict[str, Any], names: tuple[str, ...], source: str
) -> None:
    hosts = trusted_hosts(config)
    assert (hosts.names, hosts.source) == (names, source)


@pytest.mark.parametrize(
    ("value", "named"),
    [([], "trusts every Host"), ("example.com", "list of host names"), ([""], "list of host")],
)
def test_a_trusted_hosts_list_that_trusts_everyone_stops_start_up(
    tmp_path: Path, value: Any, named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        make_app(tmp_path, TRUSTED_HOSTS=value)


# -- the exploit, replayed against real servers as shipped ---------------------------------


def flask_run_debug(port: int) -> list[str]:
    """`make run`'s server: the demo under Flask's debug server (reloader off: one process)."""
    demo = ["-m", "flask", "--app", "flask_portcullis.demo", "run", "--debug", "--no-reload"]
    return [sys.executable, *demo, "--host=127.0.0.1", f"--port={port}"]


def gunicorn(port: int) -> list[str]:
    """The deployment docs' command, with no settings at all."""
    pytest.importorskip("gunicorn")
    command = [sys.executable, "-m", "gunicorn", "--workers=1", f"--bind=127.0.0.1:{port}"]
    return [*command, *gunicorn_options(), "flask_portcullis.demo:create_app()"]


@pytest.fixture(params=[flask_run_debug, gunicorn], ids=["make-run", "gunicorn"])
def demo_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppServer]:
    """The demo with no settings (mail printed to its console), migrated as `make run` does."""
    env = server_environment({}, tmp_path / "instance")
    flask = [sys.executable, "-m", "flask", "--app", "flask_portcullis.demo", "db", "upgrade"]
    subprocess.run(flask, env=env, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    server = launch("demo", env, tmp_path, command=request.param)
    try:
        if not wait_until_healthy(server):
            pytest.fail("the demo found no free port")
        yield server
    finally:
        server.stop()


RESET_LINK = re.compile(r"https?://(\S+?)/reset-password/\S+")


def test_the_host_header_exploit_mails_no_link_to_the_attacker(demo_server: AppServer) -> None:
    victim = Browser()
    signup = b'{"username": "victim", "email": "victim@example.com", "password": "%s"}'
    created = victim.request(
        demo_server,
        "POST",
        "/api/v1/register",
        body=signup % PASSWORD.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert created.status == 201, created.body
    ask = b'{"email": "victim@example.com"}'
    json_type = {"Content-Type": "application/json"}
    attacker = Browser()
    for host in FORGED:
        reply = attacker.request(
            demo_server,
            "POST",
            "/api/v1/forgot-password",
            body=ask,
            headers={**json_type, "Host": host},
        )
        assert reply.status == 400, (host, reply.body)
        assert reply.headers["content-type"] == "application/problem+json"
        token = attacker.csrf_token(demo_server, "/forgot-password")
        reply = attacker.request(
            demo_server,
            "POST",
            "/forgot-password",
            body=f"csrf_token={token}&email=victim%40example.com".encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Host": host},
        )
        assert reply.status == 400, (host, reply.body)

    # The same request on the server's own name mails the link, on that name.
    here = f"localhost:{demo_server.port}"
    reply = attacker.request(
        demo_server,
        "POST",
        "/api/v1/forgot-password",
        body=ask,
        headers={**json_type, "Host": here},
    )
    assert reply.status == 202
    deadline = time.monotonic() + 10
    while not RESET_LINK.search(printed := demo_server.log.read_text()):
        assert time.monotonic() < deadline, printed
        time.sleep(0.1)
    assert RESET_LINK.findall(printed) == [here], printed


def test_the_openapi_server_url_comes_from_a_trusted_host_only(client: FlaskClient) -> None:
    for host in (*FORGED, *MALFORMED):
        response = client.get("/api/v1/openapi.json", headers={"Host": host})
        assert response.status_code == 400, host
        assert response.get_json()["code"] == "untrusted_host"
    document = client.get("/api/v1/openapi.json", headers={"Host": "127.0.0.1:8000"}).get_json()
    assert [server["url"] for server in document["servers"]] == ["http://127.0.0.1:8000/api/v1"]


def test_the_passkey_site_comes_from_a_trusted_host_only(client: FlaskClient) -> None:
    """Unset PORTCULLIS_WEBAUTHN_RP_ID: the login page's passkey options name the request's
    host, so a foreign one must never get that far."""
    for host in (*FORGED, *MALFORMED):
        assert client.get("/login", headers={"Host": host}).status_code == 400, host
    page = client.get("/login", headers={"Host": "localhost:5000"}).get_data(as_text=True)
    assert "&#34;rpId&#34;: &#34;localhost&#34;" in page or '"rpId": "localhost"' in page, page
