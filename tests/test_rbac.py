"""Roles and permissions: the decorators, the admin console and the Flask-Principal bridge."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from flask_principal import Permission, RoleNeed, UserNeed

from flask_portcullis import get_state, permission_required, roles_accepted, roles_required
from flask_portcullis.principal import PermissionNeed

from .conftest import AppFactory, FakeClock, login, make_user

ROLES = ("auditor", "manager")
# path -> (decorator, protected by)
PROTECTED: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "/auditors": roles_required("auditor"),
    "/auditors-and-managers": roles_required("auditor", "manager"),
    "/auditors-or-managers": roles_accepted("auditor", "manager"),
    "/reports": permission_required("reports.read"),
    "/reports/edit": permission_required("reports.read", "reports.write"),
}


def add_protected_routes(app: Flask) -> None:
    """Add one small view per decorator use; each answers with its own path."""
    for path, decorator in PROTECTED.items():

        def view(path: str = path) -> str:
            return f"welcome to {path}"

        view.__name__ = "view_" + path.strip("/").replace("/", "_").replace("-", "_")
        app.add_url_rule(path, view_func=decorator(view))


@pytest.fixture
def rbac_app(app: Flask) -> Flask:
    add_protected_routes(app)
    with app.app_context():
        state = get_state(app)
        for role in ROLES:
            state.roles.ensure(role)
    return app


def client_with_roles(app: Flask, *roles: str, username: str = "ada") -> FlaskClient:
    make_user(app, username, f"{username}@example.com", roles=roles)
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def next_of(location: str) -> tuple[str, str]:
    """Split a login redirect into (path, next)."""
    parts = urlsplit(location)
    return parts.path, parse_qs(parts.query)["next"][0]


# -- decorators ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", list(PROTECTED))
def test_anonymous_visitor_is_sent_to_login_with_next(
    rbac_app: Flask, client: FlaskClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert next_of(response.headers["Location"]) == ("/login", path)


def test_next_keeps_the_query_string_and_brings_the_user_back(
    rbac_app: Flask, client: FlaskClient
) -> None:
    make_user(rbac_app, roles=("auditor",))
    response = client.get("/auditors?year=2025&q=a+b")
    login_path, target = next_of(response.headers["Location"])
    assert login_path == "/login"
    assert urlsplit(target).path == "/auditors"
    assert parse_qs(urlsplit(target).query) == {"year": ["2025"], "q": ["a b"]}
    assert "Please sign in" in client.get(response.headers["Location"]).get_data(as_text=True)
    signed_in = login(client, path=response.headers["Location"])
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"] == target
    assert client.get(target).get_data(as_text=True) == "welcome to /auditors"


@pytest.mark.parametrize(
    ("roles", "path", "status"),
    [
        ((), "/auditors", 403),
        (("auditor",), "/auditors", 200),
        (("manager",), "/auditors", 403),
        (("admin",), "/auditors", 403),
        ((), "/auditors-and-managers", 403),
        (("auditor",), "/auditors-and-managers", 403),
        (("manager",), "/auditors-and-managers", 403),
        (("auditor", "manager"), "/auditors-and-managers", 200),
        ((), "/auditors-or-managers", 403),
        (("auditor",), "/auditors-or-managers", 200),
        (("manager",), "/auditors-or-managers", 200),
        (("auditor", "manager"), "/auditors-or-managers", 200),
        (("admin",), "/auditors-or-managers", 403),
    ],
)
def test_roles_decide_access(
    rbac_app: Flask, roles: tuple[str, ...], path: str, status: int
) -> None:
    client = client_with_roles(rbac_app, *roles)
    response = client.get(path)
    assert response.status_code == status
    if status == 200:
        assert response.get_data(as_text=True) == f"welcome to {path}"
    else:
        assert "Forbidden" in response.get_data(as_text=True)


def test_permissions_come_from_the_roles_a_user_holds(rbac_app: Flask) -> None:
    user_id = make_user(rbac_app, roles=("auditor",))
    with rbac_app.app_context():
        state = get_state(rbac_app)
        user = state.accounts.get(user_id)
        assert user is not None
        assert not user.has_permission("reports.read")
        state.roles.grant_permission("auditor", "reports.read")
        state.roles.grant_permission("manager", "reports.write")
    with rbac_app.app_context():
        user = get_state(rbac_app).accounts.get(user_id)
        assert user is not None
        assert user.has_permission("reports.read")
        assert not user.has_permission("reports.write")
        assert not user.has_permission("reports")
        assert not user.has_role("reports.read")


@pytest.mark.parametrize(
    ("grants", "roles", "path", "status"),
    [
        ({}, ("auditor",), "/reports", 403),
        ({"auditor": ["reports.read"]}, ("auditor",), "/reports", 200),
        ({"auditor": ["reports.read"]}, ("manager",), "/reports", 403),
        ({"auditor": ["reports.write"]}, ("auditor",), "/reports", 403),
        ({"auditor": ["reports.read"]}, ("auditor",), "/reports/edit", 403),
        ({"auditor": ["reports.read", "reports.write"]}, ("auditor",), "/reports/edit", 200),
        # Permissions add up across roles.
        ({"auditor": ["reports.read"], "manager": ["reports.write"]}, ("auditor", "manager"),
         "/reports/edit", 200),
        ({"auditor": ["reports.read"], "manager": ["reports.write"]}, ("manager",),
         "/reports/edit", 403),
    ],
)  # fmt: skip
def test_permission_required(
    rbac_app: Flask, grants: dict[str, list[str]], roles: tuple[str, ...], path: str, status: int
) -> None:
    with rbac_app.app_context():
        state = get_state(rbac_app)
        for role, permissions in grants.items():
            for permission in permissions:
                state.roles.grant_permission(role, permission)
    client = client_with_roles(rbac_app, *roles)
    assert client.get(path).status_code == status


def test_losing_a_role_is_refused_on_the_next_request(rbac_app: Flask) -> None:
    client = client_with_roles(rbac_app, "auditor")
    assert client.get("/auditors").status_code == 200
    with rbac_app.app_context():
        state = get_state(rbac_app)
        user = state.accounts.require_by_identity("ada")
        assert state.roles.remove_from_user(user, "auditor")
    assert client.get("/auditors").status_code == 403
    assert client.get("/auditors-or-managers").status_code == 403
    # Still signed in: losing a role is not losing the session.
    assert client.get("/account").status_code == 200


def test_losing_a_permission_bearing_role_is_refused_on_the_next_request(
    rbac_app: Flask,
) -> None:
    with rbac_app.app_context():
        get_state(rbac_app).roles.grant_permission("auditor", "reports.read")
    client = client_with_roles(rbac_app, "auditor")
    assert client.get("/reports").status_code == 200
    with rbac_app.app_context():
        get_state(rbac_app).roles.delete("auditor")
    assert client.get("/reports").status_code == 403


def test_gaining_a_role_counts_on_the_next_request(rbac_app: Flask) -> None:
    client = client_with_roles(rbac_app)
    assert client.get("/auditors").status_code == 403
    with rbac_app.app_context():
        state = get_state(rbac_app)
        state.roles.add_to_user(state.accounts.require_by_identity("ada"), "auditor")
    assert client.get("/auditors").status_code == 200


def test_signing_out_closes_protected_pages(rbac_app: Flask) -> None:
    client = client_with_roles(rbac_app, "auditor")
    assert client.get("/auditors").status_code == 200
    page = client.get("/logout").get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/auditors").status_code == 302


def test_decorators_keep_the_view_name_and_docstring() -> None:
    def view() -> str:
        """Show the reports."""
        return ""

    for decorator in (
        roles_required("a"),
        roles_accepted("a", "b"),
        permission_required("reports.read"),
    ):
        wrapped = decorator(view)
        assert wrapped.__name__ == "view"
        assert wrapped.__doc__ == "Show the reports."


# -- admin console -------------------------------------------------------------------------


def test_admin_console_anonymous_goes_to_login(client: FlaskClient) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302
    assert next_of(response.headers["Location"]) == ("/login", "/admin/")


def test_admin_console_is_forbidden_to_normal_users(app: Flask, auth_client: FlaskClient) -> None:
    response = auth_client.get("/admin/")
    assert response.status_code == 403
    assert "ada@example.com" not in response.get_data(as_text=True)
    assert 'href="/admin/"' not in auth_client.get("/account").get_data(as_text=True)


def test_admin_console_lists_users_for_admins(app: Flask) -> None:
    make_user(app, "grace", "grace@example.com", verified=True)
    make_user(app, "linus", "linus@example.org")
    client = client_with_roles(app, "admin", username="root")
    response = client.get("/admin/users")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for name in ("grace@example.com", "linus@example.org", "root@example.com"):
        assert name in page
    assert page.index("grace") < page.index("linus") < page.index("root@example.com")
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("gra", ["grace"], ["linus", "a_b", "percy"]),
        ("GRACE", ["grace"], ["linus"]),
        ("example.org", ["linus"], ["grace", "a_b"]),
        ("_", ["a_b"], ["grace", "linus", "percy"]),
        ("%", ["percy"], ["grace", "linus", "a_b"]),
        ("nobody-matches", [], ["grace", "linus", "a_b", "percy"]),
        ("", ["grace", "linus", "a_b", "percy"], []),
    ],
    ids=["prefix", "case", "email", "underscore-literal", "percent-literal", "none", "all"],
)
def test_admin_search_filters(app: Flask, query: str, shown: list[str], hidden: list[str]) -> None:
    make_user(app, "grace", "grace@example.com")
    make_user(app, "linus", "linus@example.org")
    make_user(app, "a_b", "ab@example.net")
    make_user(app, "percy", "100%real@example.net")
    client = client_with_roles(app, "admin", username="root")
    response = client.get("/admin/users", query_string={"q": query})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    names = re.findall(r'<td><a href="/admin/users/\d+">([^<]*)</a></td>', page)
    cells = {name: name in names for name in ["grace", "linus", "a_b", "percy"]}
    assert [name for name in shown if not cells[name]] == []
    assert [name for name in hidden if cells[name]] == []
    if not shown:
        assert "No users match." in page
    assert f'value="{query}"' in page


def test_admin_role_lost_closes_the_console(app: Flask) -> None:
    client = client_with_roles(app, "admin", username="root")
    assert client.get("/admin/").status_code == 200
    with app.app_context():
        state = get_state(app)
        state.roles.remove_from_user(state.accounts.require_by_identity("root"), "admin")
    assert client.get("/admin/").status_code == 403


# -- Flask-Principal bridge ------------------------------------------------------------------


@pytest.fixture
def principal_app(make_demo_app: AppFactory, clock: FakeClock) -> Flask:
    app = make_demo_app("", clock=clock, mail=False, PORTCULLIS_PRINCIPAL=True)

    # Straight from the Flask-Principal docs.
    admin_permission = Permission(RoleNeed("admin"))
    reports_permission = Permission(PermissionNeed("reports.read"))

    @app.route("/principal/admin")
    @admin_permission.require(http_exception=403)  # type: ignore[untyped-decorator]
    def principal_admin() -> str:
        return "admin only"

    @app.route("/principal/reports")
    @reports_permission.require(http_exception=403)  # type: ignore[untyped-decorator]
    def principal_reports() -> str:
        return "reports"

    @app.route("/principal/whoami")
    def whoami() -> str:
        identity = g.identity
        needs = sorted(f"{need.method}:{need.value}" for need in identity.provides)
        can = "admin" if admin_permission.can() else "not admin"
        return f"{identity.id}|{identity.auth_type}|{can}|{','.join(needs)}"

    with app.app_context():
        state = get_state(app)
        state.roles.ensure("auditor")
        state.roles.grant_permission("auditor", "reports.read")
    return app


@pytest.mark.parametrize(
    ("roles", "admin_status", "reports_status"),
    [
        ((), 403, 403),
        (("admin",), 200, 403),
        (("auditor",), 403, 200),
        (("admin", "auditor"), 200, 200),
    ],
)
def test_principal_needs(
    principal_app: Flask, roles: tuple[str, ...], admin_status: int, reports_status: int
) -> None:
    client = client_with_roles(principal_app, *roles)
    assert client.get("/principal/admin").status_code == admin_status
    assert client.get("/principal/reports").status_code == reports_status
    if admin_status == 200:
        assert client.get("/principal/admin").get_data(as_text=True) == "admin only"


def test_principal_anonymous_is_refused(principal_app: Flask) -> None:
    client = principal_app.test_client()
    assert client.get("/principal/admin").status_code == 403
    assert client.get("/principal/reports").status_code == 403
    assert client.get("/principal/whoami").get_data(as_text=True) == "None|None|not admin|"


def test_principal_identity_carries_user_roles_and_permissions(principal_app: Flask) -> None:
    client = client_with_roles(principal_app, "admin", "auditor")
    with principal_app.app_context():
        user_id = get_state(principal_app).accounts.require_by_identity("ada").id
    text = client.get("/principal/whoami").get_data(as_text=True)
    identity_id, auth_type, can, needs = text.split("|")
    assert (identity_id, auth_type, can) == (str(user_id), "portcullis", "admin")
    assert set(needs.split(",")) == {
        "id:" + str(user_id),
        "role:admin",
        "role:auditor",
        "permission:reports.read",
    }
    assert UserNeed(user_id) == ("id", user_id)


def test_principal_identity_follows_role_changes_and_sign_out(principal_app: Flask) -> None:
    client = client_with_roles(principal_app, "admin")
    assert client.get("/principal/admin").status_code == 200
    with principal_app.app_context():
        state = get_state(principal_app)
        state.roles.remove_from_user(state.accounts.require_by_identity("ada"), "admin")
    assert client.get("/principal/admin").status_code == 403
    with principal_app.app_context():
        state = get_state(principal_app)
        state.roles.add_to_user(state.accounts.require_by_identity("ada"), "admin")
    assert client.get("/principal/admin").status_code == 200
    with principal_app.app_context():
        state = get_state(principal_app)
        state.sessions.end_all(state.accounts.require_by_identity("ada").id)
    assert client.get("/principal/admin").status_code == 403
    assert client.get("/principal/whoami").get_data(as_text=True).startswith("None|")


def test_principal_bridge_leaves_portcullis_decorators_working(principal_app: Flask) -> None:
    add_protected_routes(principal_app)
    with principal_app.app_context():
        get_state(principal_app).roles.ensure("manager")
    client = client_with_roles(principal_app, "auditor")
    assert client.get("/auditors").status_code == 200
    assert client.get("/reports").status_code == 200
    assert client.get("/auditors-and-managers").status_code == 403
    assert client.get("/admin/").status_code == 403


@pytest.mark.parametrize("decorator", [roles_required, roles_accepted, permission_required])
def test_decorators_refuse_an_empty_list(decorator: Callable[..., object]) -> None:
    with pytest.raises(TypeError):
        decorator()
