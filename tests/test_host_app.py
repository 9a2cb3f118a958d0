"""Adopting Portcullis in an existing app: the README example and a host with its own models."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_portcullis import get_state

from .conftest import PASSWORD, login, make_user, submit
from .host_app import Customer, create_host_app, db

README = Path(__file__).parent.parent / "README.md"


def readme_example() -> str:
    text = README.read_text()
    marker = text.index("<!-- example: add-to-app")
    match = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert match, "README lost its add-to-app example"
    return match.group(1)


def test_readme_example_works_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = readme_example()
    assert len(source.strip().splitlines()) <= 16
    module_path = tmp_path / "app.py"
    module_path.write_text(source)
    spec = importlib.util.spec_from_file_location("readme_app", module_path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "readme_app", module)
    spec.loader.exec_module(module)
    app: Flask = module.app
    client = app.test_client()

    first = client.get("/")
    assert first.status_code == 302
    assert first.headers["Location"].startswith("/login?next=")
    registered = submit(
        client,
        "/register",
        {
            "username": "ada",
            "email": "ada@example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )
    assert registered.status_code == 302
    assert client.get("/").get_data(as_text=True) == "Hello, ada!"
    submit(client, "/logout", {})
    assert client.get("/").status_code == 302
    assert login(client, "ADA@example.com", path="/login?next=/").headers["Location"] == "/"
    assert client.get("/").get_data(as_text=True) == "Hello, ada!"
    # The real argon2id parameters, not the test ones.
    with app.app_context():
        user = get_state(app).accounts.get_by_identity("ada")
        assert user is not None
        assert user.password_hash is not None
        assert "$m=19456,t=2,p=1$" in user.password_hash
    assert (tmp_path / "instance" / "app.db").exists()


@pytest.fixture
def host(tmp_path: Path) -> Flask:
    return create_host_app(f"sqlite:///{tmp_path / 'host.db'}")


def test_host_tables_live_in_the_host_metadata(host: Flask) -> None:
    tables = set(db.metadata.tables)
    assert {"customers", "order", "roles", "permissions", "user_sessions", "user_roles"} <= tables
    assert get_state(host).models.User is Customer


def test_host_user_with_extra_columns_registers_and_signs_in(host: Flask) -> None:
    client = host.test_client()
    response = submit(
        client,
        "/register",
        {
            "username": "grace",
            "email": "grace@example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )
    assert response.status_code == 302
    with host.app_context():
        customer = db.session.scalars(db.select(Customer)).one()
        customer.shoe_size = 38
        db.session.commit()
    assert client.get("/shoes").get_data(as_text=True) == "grace wears size 38"


def test_current_user_reads_and_writes_the_hosts_own_columns(tmp_path: Path) -> None:
    """current_user is a light object (identity fields from the session check); a host's own
    column is read from, and written to, its ORM user, loaded only then."""
    host = create_host_app(f"sqlite:///{tmp_path / 'host.db'}", WTF_CSRF_ENABLED=False)
    make_user(host, "grace", "grace@example.com", extra={"shoe_size": 38})
    client = host.test_client()
    login(client, "grace")
    with host.app_context():
        engine = db.engine
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get("/").status_code == 200  # the nav: identity fields only
        assert len(seen) == 1, seen
        assert client.get("/shoes").get_data(as_text=True) == "grace wears size 38"
        assert len(seen) == 3, seen  # the session check, then the ORM user for shoe_size
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert client.post("/shoes/41").status_code == 200
    assert client.get("/shoes").get_data(as_text=True) == "grace wears size 41"
    with host.app_context():
        assert db.session.scalars(db.select(Customer.shoe_size)).one() == 41


def test_host_layout_overrides_the_base_template(host: Flask) -> None:
    page = host.test_client().get("/login").get_data(as_text=True)
    assert "Host shop header" in page
    assert 'name="identity"' in page


def test_host_login_manager_is_reused(host: Flask) -> None:
    from .host_app import login_manager

    assert host.login_manager is login_manager  # type: ignore[attr-defined]
    assert login_manager.login_view == "portcullis.login"


# The public macros (templates/portcullis/macros.html) in the host's own layout
# (tests/host_templates/layout.html imports them without context).
SIGN_OUT_FORM = re.compile(
    r'<form method="post" action="([^"]+)" class="inline portcullis-sign-out">\s*'
    r'<input type="hidden" name="csrf_token" value="([^"]*)">\s*'
    r'<button type="submit" class="([^"]+)">([^<]+)</button>'
)


def sign_out_forms(page: str) -> list[tuple[str, str, str, str]]:
    """(action, token, button class, label) of each sign-out button on the page."""
    return SIGN_OUT_FORM.findall(page)


def test_host_nav_offers_sign_in_and_register_when_anonymous(host: Flask) -> None:
    page = host.test_client().get("/").get_data(as_text=True)
    assert '<nav class="host-nav"><ul class="portcullis-nav">' in page
    assert '<li><a href="/login">Sign in</a></li>' in page
    assert '<li><a href="/register">Register</a></li>' in page
    assert sign_out_forms(page) == []
    assert "/account" not in page


def test_host_nav_leaves_out_register_when_sign_up_is_closed(tmp_path: Path) -> None:
    host = create_host_app(f"sqlite:///{tmp_path / 'host.db'}", PORTCULLIS_REGISTRATION=False)
    page = host.test_client().get("/").get_data(as_text=True)
    assert '<li><a href="/login">Sign in</a></li>' in page
    assert "/register" not in page


@pytest.mark.parametrize(("roles", "admin_link"), [((), False), (("admin",), True)])
def test_host_nav_shows_the_account_and_a_sign_out_button_when_signed_in(
    host: Flask, roles: tuple[str, ...], admin_link: bool
) -> None:
    make_user(host, roles=roles)
    client = host.test_client()
    assert login(client).status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert '<li><a href="/account">ada</a></li>' in page
    assert ('<li><a href="/admin/">Admin</a></li>' in page) is admin_link
    assert "Sign in" not in page
    assert "/register" not in page
    # The nav's button and the page's own, each a POST to /logout with a CSRF token.
    forms = sign_out_forms(page)
    assert [(action, cls, label) for action, _, cls, label in forms] == [
        ("/logout", "link", "Sign out"),
        ("/logout", "host-button", "Leave the shop"),
    ]
    assert all(token for _, token, _, _ in forms)


def test_pressing_the_host_sign_out_button_signs_out(host: Flask) -> None:
    make_user(host)
    client = host.test_client()
    login(client)
    assert client.get("/shoes").status_code == 200
    # Without the form's token the POST is refused (CSRF), and nobody is signed out.
    refused = client.post("/logout", data={})
    assert refused.status_code == 422
    assert client.get("/shoes").status_code == 200
    action, token, _, _ = sign_out_forms(client.get("/").get_data(as_text=True))[0]
    response = client.post(action, data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert client.get("/shoes").status_code == 302
    assert '<li><a href="/login">Sign in</a></li>' in client.get("/").get_data(as_text=True)


def test_host_sign_out_button_works_with_csrf_turned_off(tmp_path: Path) -> None:
    host = create_host_app(f"sqlite:///{tmp_path / 'host.db'}", WTF_CSRF_ENABLED=False)
    make_user(host)
    client = host.test_client()
    assert client.get("/").status_code == 200
    assert client.post("/login", data={"identity": "ada", "password": PASSWORD}).status_code == 302
    page = client.get("/")
    assert page.status_code == 200
    action, token, _, _ = sign_out_forms(page.get_data(as_text=True))[0]
    assert client.post(action, data={"csrf_token": token}).status_code == 302
    assert client.get("/shoes").status_code == 302


def test_the_nav_links_follow_the_mount_point_of_each_request(host: Flask) -> None:
    """The layout's links are built once per mount point (web/urls.py), never shared
    between an app served at / and the same app under a prefix."""
    client = host.test_client()
    plain = client.get("/").get_data(as_text=True)
    mounted = client.get("/", base_url="http://localhost/accounts").get_data(as_text=True)
    assert 'href="/login"' in plain
    assert 'href="/accounts/login"' in mounted
    assert 'href="/login"' not in mounted
    assert 'href="/login"' in client.get("/").get_data(as_text=True)
