"""``flask users ...`` and ``flask roles ...`` driven through Flask's CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from flask_portcullis import get_state
from flask_portcullis.demo import create_app

from .conftest import (
    PASSWORD,
    login,
    make_user,
    signed_in,
)
from .rows import get_user, session_count

OTHER_PASSWORD = "violet kettle under moonlight"


def invoke(runner: FlaskCliRunner, *args: str, input: str | None = None) -> Result:
    result: Result = runner.invoke(args=list(args), input=input)
    return result


def create(
    runner: FlaskCliRunner,
    username: str = "grace",
    email: str = "grace@example.com",
    password: str = PASSWORD,
    *extra: str,
) -> Result:
    return invoke(
        runner,
        "users",
        "create",
        "--username",
        username,
        "--email",
        email,
        "--password-stdin",
        *extra,
        input=password + "\n",
    )


def usernames(app: Flask) -> list[str]:
    with app.app_context():
        return [u.username for u in get_state(app).accounts.search("", limit=1000)]


def role_names(app: Flask) -> list[str]:
    with app.app_context():
        return [r.name for r in get_state(app).roles.list()]


def roles_of(app: Flask, username: str) -> list[str]:
    with app.app_context():
        user = get_state(app).accounts.require_by_identity(username)
        return sorted(r.name for r in user.roles)


def assert_ok(result: Result, *expected: str) -> None:
    assert result.exit_code == 0, (result.output, result.exception)
    for text in expected:
        assert text in result.output


def assert_clean_error(result: Result, text: str) -> None:
    """Non-zero exit, one ``Error: ...`` line on stderr, no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert text in lines[0]


# -- users create -------------------------------------------------------------------------


def test_create_reads_the_password_from_stdin_and_the_user_can_sign_in(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    result = create(runner)
    assert_ok(result, "created user grace (id ")
    assert PASSWORD not in result.output
    assert usernames(app) == ["grace"]
    response = login(client, "grace", PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_create_keeps_inner_spaces_and_drops_only_the_line_terminator(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    assert_ok(
        invoke(
            runner,
            "users",
            "create",
            "--username",
            "grace",
            "--email",
            "grace@example.com",
            "--password-stdin",
            input="  spaced out passphrase  \r\n",
        )
    )
    assert login(client, "grace", "  spaced out passphrase  ").status_code == 302


def test_create_without_password_stdin_prompts_twice(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    result = invoke(
        runner,
        "users",
        "create",
        "--username",
        "grace",
        "--email",
        "grace@example.com",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert_ok(result, "created user grace")
    assert login(client, "grace").status_code == 302


def test_created_users_count_as_verified(app: Flask, runner: FlaskCliRunner) -> None:
    assert_ok(create(runner))
    with app.app_context():
        user = get_state(app).accounts.require_by_identity("grace")
        assert user.email_verified
    assert "unverified" not in invoke(runner, "users", "show", "grace").output


def test_unverified_flag_leaves_the_address_unverified(app: Flask, runner: FlaskCliRunner) -> None:
    assert_ok(create(runner, "grace", "grace@example.com", PASSWORD, "--unverified"))
    with app.app_context():
        user = get_state(app).accounts.require_by_identity("grace")
        assert not user.email_verified
    assert "[unverified]" in invoke(runner, "users", "show", "grace").output


def test_create_with_roles(app: Flask, runner: FlaskCliRunner) -> None:
    assert_ok(invoke(runner, "roles", "create", "editor"))
    result = create(runner, "grace", "grace@example.com", PASSWORD, "--role", "admin")
    assert_ok(result)
    result = create(
        runner, "linus", "linus@example.com", PASSWORD, "--role", "admin", "--role", "editor"
    )
    assert_ok(result)
    assert roles_of(app, "grace") == ["admin"]
    assert roles_of(app, "linus") == ["admin", "editor"]


def test_admin_created_from_the_cli_reaches_the_admin_console(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    assert_ok(create(runner, "grace", "grace@example.com", PASSWORD, "--role", "admin"))
    login(client, "grace")
    assert client.get("/admin/").status_code == 200


def test_create_with_a_missing_role_fails_and_creates_nothing(
    app: Flask, runner: FlaskCliRunner
) -> None:
    result = create(runner, "grace", "grace@example.com", PASSWORD, "--role", "wizard")
    assert_clean_error(result, "No role 'wizard'")
    assert "flask roles create wizard" in result.stderr
    assert usernames(app) == []
    assert "wizard" not in role_names(app)


def test_create_with_one_good_and_one_missing_role_creates_nothing(
    app: Flask, runner: FlaskCliRunner
) -> None:
    result = create(
        runner, "grace", "grace@example.com", PASSWORD, "--role", "admin", "--role", "wizard"
    )
    assert_clean_error(result, "No role 'wizard'")
    assert usernames(app) == []


GRACE = "grace@example.com"


@pytest.mark.parametrize(
    ("username", "email", "password", "message"),
    [
        pytest.param("grace", GRACE, "password", "too common", id="common"),
        pytest.param("grace", GRACE, "short", "at least 8", id="short"),
        pytest.param("grace", GRACE, "", "at least 8", id="empty"),
        pytest.param("grace", GRACE, "x" * 300, "at most 256", id="too-long"),
        pytest.param("grace", GRACE, GRACE, "username or email", id="email-as-password"),
        pytest.param("grace", GRACE, "tab\tinside here", "control characters", id="control"),
        pytest.param("grace", "not-an-email", PASSWORD, "valid email address", id="no-at-sign"),
        pytest.param("grace", "grace@", PASSWORD, "valid email address", id="no-domain"),
        pytest.param("grace", "a" * 250 + "@example.com", PASSWORD, "too long", id="long-email"),
        pytest.param("gr", GRACE, PASSWORD, "Use 3 to 32", id="short-username"),
        pytest.param("gr ace", GRACE, PASSWORD, "Use only letters", id="space-in-username"),
        pytest.param("grace@home", GRACE, PASSWORD, "Use only letters", id="at-in-username"),
    ],
)
def test_create_rejects_bad_values_with_one_clear_line(
    app: Flask, runner: FlaskCliRunner, username: str, email: str, password: str, message: str
) -> None:
    result = create(runner, username, email, password)
    assert_clean_error(result, message)
    assert usernames(app) == []


def test_password_errors_are_reported_together(app: Flask, runner: FlaskCliRunner) -> None:
    result = create(runner, "grace", "grace@example.com", "\x01short")
    assert_clean_error(result, "password rejected: ")
    assert "at least 8" in result.stderr
    assert "control characters" in result.stderr


@pytest.mark.parametrize(
    ("username", "email", "message"),
    [
        ("ada", "someone@example.com", "That username is already taken."),
        ("ADA", "someone@example.com", "That username is already taken."),
        ("\uff41\uff44\uff41", "someone@example.com", "That username is already taken."),
        ("someone", "ada@example.com", "cannot be used for a new account"),
        ("someone", "Ada@Example.COM", "cannot be used for a new account"),
    ],
    ids=["same", "case", "fullwidth", "email", "email-case"],
)
def test_create_refuses_taken_names(
    app: Flask, user: int, runner: FlaskCliRunner, username: str, email: str, message: str
) -> None:
    result = create(runner, username, email)
    assert_clean_error(result, message)
    assert usernames(app) == ["ada"]


def test_create_requires_username_and_email(app: Flask, runner: FlaskCliRunner) -> None:
    result = invoke(runner, "users", "create", "--email", "a@example.com", "--password-stdin")
    assert result.exit_code != 0
    assert "--username" in result.output
    result = invoke(runner, "users", "create", "--username", "grace", "--password-stdin")
    assert result.exit_code != 0
    assert "--email" in result.output
    assert usernames(app) == []


# -- users list / show --------------------------------------------------------------------


def test_list_shows_every_user_with_roles_and_flags(app: Flask, runner: FlaskCliRunner) -> None:
    ada = make_user(app, roles=("admin",), verified=True)
    grace = make_user(app, "grace", "grace@example.com")
    result = invoke(runner, "users", "list")
    assert_ok(result)
    assert result.output.splitlines() == [
        f"{ada}\tada\tada@example.com\troles=admin",
        f"{grace}\tgrace\tgrace@example.com\troles=- [unverified]",
    ]


def test_list_marks_inactive_users(app: Flask, runner: FlaskCliRunner) -> None:
    make_user(app, verified=True)
    assert_ok(invoke(runner, "users", "deactivate", "ada"))
    assert "[inactive]" in invoke(runner, "users", "list").output


def test_list_with_no_users_prints_nothing(runner: FlaskCliRunner) -> None:
    result = invoke(runner, "users", "list")
    assert_ok(result)
    assert result.output == ""


@pytest.mark.parametrize(
    ("search", "expected"),
    [("gra", ["grace"]), ("EXAMPLE.ORG", ["linus"]), ("", ["ada", "grace", "linus"]), ("zz", [])],
)
def test_list_search(app: Flask, runner: FlaskCliRunner, search: str, expected: list[str]) -> None:
    make_user(app)
    make_user(app, "grace", "grace@example.com")
    make_user(app, "linus", "linus@example.org")
    result = invoke(runner, "users", "list", "--search", search)
    assert_ok(result)
    assert [line.split("\t")[1] for line in result.output.splitlines()] == expected


@pytest.mark.parametrize("identity", ["ada", "ADA", "ada@example.com", "Ada@Example.com"])
def test_show_finds_a_user_by_username_or_email(
    app: Flask, user: int, runner: FlaskCliRunner, identity: str
) -> None:
    result = invoke(runner, "users", "show", identity)
    assert_ok(result, f"{user}\tada\tada@example.com", "created 2026-01-01 12:00 UTC")
    assert "last sign-in never" in result.output


def test_show_lists_sessions_and_last_sign_in(
    app: Flask, runner: FlaskCliRunner, auth_client: FlaskClient
) -> None:
    result = invoke(runner, "users", "show", "ada")
    assert_ok(result, "last sign-in 2026-01-01 12:00 UTC", "session since 2026-01-01 12:00 from")
    assert result.output.count("session since") == 1


# -- unknown users and roles --------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["users", "show", "nobody"],
        ["users", "activate", "nobody"],
        ["users", "deactivate", "nobody"],
        ["users", "delete", "nobody", "--yes"],
        ["users", "add-role", "nobody", "admin"],
        ["users", "remove-role", "nobody", "admin"],
        ["users", "revoke-sessions", "nobody"],
    ],
    ids=lambda args: "-".join(args[:2]),
)
def test_unknown_user_fails(app: Flask, user: int, runner: FlaskCliRunner, args: list[str]) -> None:
    assert_clean_error(invoke(runner, *args), "No user 'nobody'.")
    assert usernames(app) == ["ada"]


@pytest.mark.parametrize(
    "args",
    [
        ["users", "add-role", "ada", "wizard"],
        ["users", "remove-role", "ada", "wizard"],
        ["roles", "delete", "wizard"],
        ["roles", "grant-permission", "wizard", "reports.read"],
    ],
    ids=lambda args: "-".join(args[:2]),
)
def test_unknown_role_fails(app: Flask, user: int, runner: FlaskCliRunner, args: list[str]) -> None:
    assert_clean_error(invoke(runner, *args), "No role 'wizard'")
    assert "wizard" not in role_names(app)
    assert roles_of(app, "ada") == []


# -- activate / deactivate / revoke-sessions / delete --------------------------------------


def test_deactivate_ends_sessions_at_once_and_blocks_sign_in(
    app: Flask, user: int, runner: FlaskCliRunner, auth_client: FlaskClient
) -> None:
    assert signed_in(auth_client)
    assert_ok(invoke(runner, "users", "deactivate", "ada"), "ada is now inactive")
    assert session_count(app, user) == 0
    assert not signed_in(auth_client)
    response = login(auth_client)
    assert response.status_code == 422
    assert "deactivated" in response.get_data(as_text=True)
    assert not signed_in(auth_client)


def test_activate_lets_a_deactivated_user_sign_in_again(
    app: Flask, user: int, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    assert_ok(invoke(runner, "users", "deactivate", "ada@example.com"))
    assert login(client).status_code == 422
    assert_ok(invoke(runner, "users", "activate", "ada@example.com"), "ada is now active")
    assert login(client).status_code == 302
    assert signed_in(client)
    found = get_user(app, user)
    assert found is not None
    assert found.active


def test_revoke_sessions_signs_the_user_out_everywhere(
    app: Flask, user: int, runner: FlaskCliRunner
) -> None:
    browsers = [app.test_client() for _ in range(3)]
    for browser in browsers:
        assert login(browser).status_code == 302
    bystander = make_user(app, "grace", "grace@example.com")
    other = app.test_client()
    login(other, "grace")
    result = invoke(runner, "users", "revoke-sessions", "ada")
    assert_ok(result, "ended 3 session(s) of ada")
    assert session_count(app, user) == 0
    assert not any(signed_in(browser) for browser in browsers)
    assert signed_in(other)
    assert session_count(app, bystander) == 1
    # The account itself still works: revoking is not deactivating.
    assert login(browsers[0]).status_code == 302
    assert signed_in(browsers[0])


def test_revoke_sessions_with_none_open(app: Flask, user: int, runner: FlaskCliRunner) -> None:
    assert_ok(invoke(runner, "users", "revoke-sessions", "ada"), "ended 0 session(s) of ada")


def test_delete_yes_removes_the_user_and_their_sessions(
    app: Flask, user: int, runner: FlaskCliRunner, auth_client: FlaskClient
) -> None:
    make_user(app, "grace", "grace@example.com", roles=("admin",))
    assert_ok(invoke(runner, "users", "add-role", "ada", "admin"))
    assert_ok(invoke(runner, "users", "delete", "ada", "--yes"), "deleted ada")
    assert get_user(app, user) is None
    assert usernames(app) == ["grace"]
    assert session_count(app, user) == 0
    assert not signed_in(auth_client)
    assert login(auth_client).status_code == 422
    # The role survives for its other holders.
    assert roles_of(app, "grace") == ["admin"]
    # The name is free again.
    assert_ok(create(runner, "ada", "ada@example.com", OTHER_PASSWORD))


def test_delete_asks_for_confirmation(app: Flask, user: int, runner: FlaskCliRunner) -> None:
    result = invoke(runner, "users", "delete", "ada", input="n\n")
    assert result.exit_code != 0
    assert "Delete ada <ada@example.com>?" in result.output
    assert "Aborted" in result.output
    assert usernames(app) == ["ada"]
    result = invoke(runner, "users", "delete", "ada", input="y\n")
    assert_ok(result, "deleted ada")
    assert usernames(app) == []


# -- roles ----------------------------------------------------------------------------------


def test_add_and_remove_role(app: Flask, user: int, runner: FlaskCliRunner) -> None:
    make_user(app, "root", "root@example.com", roles=("admin",))  # not the last admin
    assert_ok(invoke(runner, "users", "add-role", "ada", "admin"), "ada now has role admin")
    assert roles_of(app, "ada") == ["admin"]
    assert_ok(invoke(runner, "users", "add-role", "ada", "admin"), "ada already had role admin")
    assert roles_of(app, "ada") == ["admin"]
    assert_ok(
        invoke(runner, "users", "remove-role", "ada", "admin"), "ada no longer has role admin"
    )
    assert roles_of(app, "ada") == []
    assert_ok(invoke(runner, "users", "remove-role", "ada", "admin"), "ada did not have role admin")


def test_add_role_grants_access_and_remove_role_takes_it_on_the_next_request(
    app: Flask, runner: FlaskCliRunner, auth_client: FlaskClient
) -> None:
    make_user(app, "root", "root@example.com", roles=("admin",))  # not the last admin
    assert auth_client.get("/admin/").status_code == 403
    assert_ok(invoke(runner, "users", "add-role", "ada", "admin"))
    assert auth_client.get("/admin/").status_code == 200
    assert_ok(invoke(runner, "users", "remove-role", "ada", "admin"))
    assert auth_client.get("/admin/").status_code == 403


def test_roles_create_and_list(app: Flask, runner: FlaskCliRunner) -> None:
    result = invoke(runner, "roles", "create", "editor", "--description", "Edits pages")
    assert_ok(result, "created role editor")
    assert_ok(invoke(runner, "roles", "create", "auditor"), "created role auditor")
    assert sorted(role_names(app)) == ["admin", "auditor", "editor"]
    listing = invoke(runner, "roles", "list")
    assert_ok(listing)
    lines = listing.output.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["admin", "auditor", "editor"]
    assert "editor\tpermissions=-\tEdits pages" in lines


def test_roles_create_trims_the_name(app: Flask, runner: FlaskCliRunner) -> None:
    assert_ok(invoke(runner, "roles", "create", "  editor  "), "created role editor")
    assert "editor" in role_names(app)


def test_roles_create_refuses_a_duplicate(app: Flask, runner: FlaskCliRunner) -> None:
    assert_ok(invoke(runner, "roles", "create", "editor"))
    assert_clean_error(invoke(runner, "roles", "create", "editor"), "Role 'editor' exists already.")
    assert sorted(role_names(app)) == ["admin", "editor"]


@pytest.mark.parametrize(
    "name", ["", "   ", "x" * 65, "bad\nname"], ids=["empty", "blank", "long", "newline"]
)
def test_roles_create_refuses_a_bad_name(app: Flask, runner: FlaskCliRunner, name: str) -> None:
    assert_clean_error(invoke(runner, "roles", "create", name), "1 to 64 printable characters")
    assert role_names(app) == ["admin"]


def test_grant_permission(app: Flask, user: int, runner: FlaskCliRunner) -> None:
    assert_ok(invoke(runner, "roles", "create", "auditor"))
    result = invoke(runner, "roles", "grant-permission", "auditor", "reports.read")
    assert_ok(result, "role auditor may now reports.read")
    # Granting twice is harmless.
    assert_ok(invoke(runner, "roles", "grant-permission", "auditor", "reports.read"))
    assert_ok(invoke(runner, "roles", "grant-permission", "auditor", "reports.export"))
    listing = invoke(runner, "roles", "list").output
    assert "auditor\tpermissions=reports.export,reports.read\t" in listing
    with app.app_context():
        state = get_state(app)
        ada = state.accounts.require_by_identity("ada")
        assert not ada.has_permission("reports.read")
    assert_ok(invoke(runner, "users", "add-role", "ada", "auditor"))
    with app.app_context():
        ada = get_state(app).accounts.require_by_identity("ada")
        assert ada.has_permission("reports.read")
        assert ada.has_permission("reports.export")
        assert not ada.has_permission("reports.delete")


@pytest.mark.parametrize(
    "name", ["  ", "reports", "Reports.Read", "reports..read", "a." + "b" * 130]
)
def test_grant_permission_refuses_a_bad_permission_name(
    app: Flask, runner: FlaskCliRunner, name: str
) -> None:
    assert_clean_error(
        invoke(runner, "roles", "grant-permission", "admin", name), '"resource.action"'
    )
    assert "permissions=-" in invoke(runner, "roles", "list").output


def test_roles_delete_removes_the_role_from_users(
    app: Flask, runner: FlaskCliRunner, auth_client: FlaskClient
) -> None:
    make_user(app, "grace", "grace@example.com", roles=("auditor", "editor"))
    assert_ok(invoke(runner, "roles", "grant-permission", "auditor", "reports.read"))
    assert_ok(invoke(runner, "users", "add-role", "ada", "auditor"))
    assert_ok(invoke(runner, "users", "add-role", "ada", "editor"))

    assert_ok(invoke(runner, "roles", "delete", "editor"), "deleted role editor")
    assert "editor" not in role_names(app)
    assert roles_of(app, "ada") == ["auditor"]
    assert roles_of(app, "grace") == ["auditor"]

    assert_ok(invoke(runner, "roles", "delete", "auditor"))
    assert roles_of(app, "ada") == []
    assert "roles=-" in invoke(runner, "users", "show", "grace").output
    with app.app_context():
        ada = get_state(app).accounts.require_by_identity("ada")
        assert not ada.has_permission("reports.read")
    # A role of the same name made later starts empty and unheld.
    assert_ok(invoke(runner, "roles", "create", "auditor"))
    assert roles_of(app, "ada") == []
    assert "auditor\tpermissions=-" in invoke(runner, "roles", "list").output


def test_the_admin_role_cannot_be_deleted(app: Flask, runner: FlaskCliRunner) -> None:
    assert_clean_error(invoke(runner, "roles", "delete", "admin"), "built in")
    assert "admin" in invoke(runner, "roles", "list").output


# -- a database without the tables ---------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["users", "list"],
        ["users", "show", "ada"],
        ["users", "add-role", "ada", "admin"],
        ["roles", "list"],
        ["portcullis", "prune-audit"],
    ],
)
def test_an_unmigrated_database_gets_one_line_that_says_to_upgrade(
    tmp_path: Path, args: list[str]
) -> None:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-" + "x" * 32,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.db'}",
        },
        instance_path=str(tmp_path / "instance"),
    )
    result = invoke(app.test_cli_runner(), *args)
    assert_clean_error(result, "run `flask db upgrade`")


def test_the_admin_role_is_made_on_first_use_where_no_migration_made_it(
    app: Flask, runner: FlaskCliRunner
) -> None:
    """A host app's own migrations create the tables but not the admin role."""
    with app.app_context():
        db = get_state(app).db
        db.session.execute(sa.text("DELETE FROM roles WHERE name = 'admin'"))
        db.session.commit()
    assert "admin" not in role_names(app)
    assert_ok(create(runner))
    assert_ok(invoke(runner, "users", "add-role", "grace", "admin"), "grace now has role admin")
    assert roles_of(app, "grace") == ["admin"]
    with app.app_context():
        role = get_state(app).roles.require("admin")
        assert role.description == "Full access to the admin console"
    # Any other missing role is still an error, not made up.
    assert_clean_error(invoke(runner, "users", "add-role", "grace", "editor"), "No role 'editor'")
