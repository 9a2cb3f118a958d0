"""``flask portcullis doctor``: a production-like configuration passes (exit 0) and names the
standard behind each item; every failing item exits 1 with a FAIL line naming the problem;
warnings print WARN and exit 0.

The production-like configuration uses the real argon2 parameters (not the suite's cheap
FAST_HASH), the real Redis on 127.0.0.1:6379 under a key prefix of the test's own, and the
default cookie settings outside debug. Output is parsed line by line.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_portcullis.demo import create_app

from .conftest import (
    FAST_HASH,
    REAL_HASH,
    REAL_LIMITS,
    REDIS_URL,
    AppFactory,
    dispose,
    free_port,
)
from .doctor_report import STANDARDS, Report, run_doctor


@pytest.fixture
def production(redis_prefix: str) -> dict[str, Any]:
    """A configuration the checklist passes in full."""
    return {
        "SECRET_KEY": secrets.token_hex(32),
        "MAIL_SERVER": "smtp.example.com",
        "MAIL_PORT": 587,
        "MAIL_USE_TLS": True,
        "PREFERRED_URL_SCHEME": "https",
        "SERVER_NAME": "accounts.example.com",
        "PORTCULLIS_REDIS_URL": REDIS_URL,
        "PORTCULLIS_REDIS_PREFIX": redis_prefix,
        "PORTCULLIS_EMAIL_VERIFICATION": "required",
        "PORTCULLIS_WEBAUTHN_RP_ID": "example.com",
        "PORTCULLIS_WEBAUTHN_ORIGINS": ["https://accounts.example.com"],
        **REAL_HASH,
        **REAL_LIMITS,
    }


class Doctor(Protocol):
    def __call__(self, config: dict[str, Any], *, app: Flask | None = None) -> Report: ...


@pytest.fixture
def doctor(make_demo_app: AppFactory) -> Iterator[Doctor]:
    """Build a migrated app from a configuration (no mail server but the configuration's) and
    run the doctor on it; or run it on ``app``."""
    apps: list[Flask] = []

    def examine(config: dict[str, Any], *, app: Flask | None = None) -> Report:
        if app is None:
            return run_doctor(make_demo_app(f"app{len(apps)}", mail=False, **config))
        apps.append(app)
        return run_doctor(app)

    yield examine
    for app in apps:
        dispose(app)


# -- a production configuration ---------------------------------------------------------------


@pytest.mark.services
def test_production_configuration_passes(doctor: Doctor, production: dict[str, Any]) -> None:
    report = doctor(production)
    assert report.exit_code == 0, report.output
    assert report.items("PASS") == set(STANDARDS), report.output
    assert report.summary == (len(STANDARDS), 0, 0)
    # Outside debug the session cookie is Secure without anyone asking for it.
    assert report.findings["Secure cookies"].standard == "OWASP ASVS 3.4.1"
    assert report.findings["SameSite cookies"].message == "SameSite=Lax"
    assert "m=19456 t=2" in report.findings["password hashing"].message
    assert "smtp.example.com" in report.findings["mail delivery"].message
    assert "Redis" in report.findings["shared limits"].message


# -- failures: exit 1 and a FAIL line naming the problem ----------------------------------------


FAILURES = [
    pytest.param({"SECRET_KEY": "short-key"}, "secret key", "SECRET_KEY", id="short-key"),
    pytest.param({"SECRET_KEY": "ab" * 32}, "secret key", "SECRET_KEY", id="repetitive-key"),
    pytest.param({"SECRET_KEY": "changeme"}, "secret key", "guessable", id="well-known-key"),
    pytest.param(
        {"RATELIMIT_ENABLED": False}, "rate limits", "RATELIMIT_ENABLED", id="rate-limits-off"
    ),
    pytest.param(FAST_HASH, "password hashing", "argon2id below", id="cheap-argon2"),
    pytest.param(
        {"PORTCULLIS_ARGON2_TIME_COST": 1},
        "password hashing",
        "argon2id below",
        id="argon2-time-cost-1",
    ),
    pytest.param(
        {"PORTCULLIS_ARGON2_MEMORY_COST": 4096},
        "password hashing",
        "argon2id below",
        id="argon2-memory-4MiB",
    ),
    pytest.param(
        {"PORTCULLIS_SECURE_COOKIES": False},
        "Secure cookies",
        "not Secure",
        id="cookies-not-secure",
    ),
]


@pytest.mark.services
@pytest.mark.parametrize(("change", "item", "named"), FAILURES)
def test_each_failure_exits_1_and_names_the_problem(
    doctor: Doctor, production: dict[str, Any], change: dict[str, Any], item: str, named: str
) -> None:
    report = doctor({**production, **change})
    assert report.exit_code == 1, report.output
    assert report.items("FAIL") == {item}, report.output
    assert named in report.findings[item].message, report.output
    assert report.summary == (len(STANDARDS) - 1, 0, 1)


@pytest.mark.services
def test_debug_mode_fails(
    doctor: Doctor, production: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FLASK_DEBUG=1, as ``flask --debug`` or the environment turns it on, for the app and the
    CLI alike. Debug also leaves the session cookie without Secure (a plain-HTTP server)."""
    monkeypatch.setenv("FLASK_DEBUG", "1")
    report = doctor(production)
    assert report.exit_code == 1, report.output
    assert report.items("FAIL") == {"debug mode", "Secure cookies"}, report.output
    assert "debug mode is on" in report.findings["debug mode"].message


@pytest.mark.services
def test_debug_mode_from_the_app_config_fails(doctor: Doctor, production: dict[str, Any]) -> None:
    report = doctor({**production, "DEBUG": True, "SESSION_COOKIE_SECURE": True})
    assert report.findings["debug mode"].status == "FAIL", report.output
    assert report.exit_code == 1, report.output


@pytest.mark.services
def test_unreachable_redis_fails(doctor: Doctor, production: dict[str, Any]) -> None:
    report = doctor({**production, "PORTCULLIS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert report.exit_code == 1, report.output
    assert report.items("FAIL") == {"shared limits"}, report.output
    assert "unreachable Redis" in report.findings["shared limits"].message


@pytest.mark.services
def test_unreachable_database_fails(
    doctor: Doctor, production: dict[str, Any], tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    settings = {"TESTING": True, **production, "SQLALCHEMY_DATABASE_URI": url}
    app = create_app(settings, instance_path=str(tmp_path / "instance"))
    report = doctor({}, app=app)
    assert report.exit_code == 1, report.output
    assert report.items("FAIL") == {"database"}, report.output
    assert "unreachable" in report.findings["database"].message


@pytest.mark.services
def test_unmigrated_database_fails(
    doctor: Doctor, production: dict[str, Any], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    settings = {"TESTING": True, **production, "SQLALCHEMY_DATABASE_URI": url}
    app = create_app(settings, instance_path=str(tmp_path / "instance"))
    report = doctor({}, app=app)
    assert report.exit_code == 1, report.output
    assert report.items("FAIL") == {"database"}, report.output
    assert "flask db upgrade" in report.findings["database"].message


@pytest.mark.services
def test_every_failure_at_once_is_listed(
    doctor: Doctor, production: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASK_DEBUG", "1")
    report = doctor(
        {
            **production,
            **FAST_HASH,
            "SECRET_KEY": "dev",
            "RATELIMIT_ENABLED": False,
            "PORTCULLIS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        }
    )
    assert report.exit_code == 1
    assert report.items("FAIL") == {
        "secret key",
        "debug mode",
        "Secure cookies",
        "password hashing",
        "rate limits",
        "shared limits",
    }, report.output
    assert report.summary[2] == 6


# -- warnings: WARN lines, exit 0 ---------------------------------------------------------------


WARNINGS = [
    pytest.param(
        {"PORTCULLIS_REDIS_URL": ""}, "shared limits", "PORTCULLIS_REDIS_URL", id="no-redis"
    ),
    pytest.param({"MAIL_SERVER": None}, "mail delivery", "MAIL_SERVER", id="no-mail-server"),
    pytest.param(
        {"PORTCULLIS_EMAIL_VERIFICATION": "off"},
        "email verification",
        "off",
        id="verification-off",
    ),
    pytest.param(
        {"PORTCULLIS_SESSION_IDLE_TIMEOUT": 4 * 3600},
        "session timeouts",
        "idle timeout",
        id="long-idle-timeout",
    ),
    pytest.param(
        {"PORTCULLIS_SESSION_LIFETIME": 7 * 24 * 3600},
        "session timeouts",
        "lifetime",
        id="long-session-lifetime",
    ),
    pytest.param(
        {"SESSION_COOKIE_SAMESITE": "None"}, "SameSite cookies", "Lax", id="samesite-none"
    ),
    pytest.param({"PREFERRED_URL_SCHEME": "http"}, "links in mail", "https", id="http-links"),
    pytest.param(
        {"PORTCULLIS_SECURITY_HEADERS": False},
        "security headers",
        "PORTCULLIS_SECURITY_HEADERS",
        id="security-headers-off",
    ),
    pytest.param(
        {"PORTCULLIS_WEBAUTHN_RP_ID": None, "PORTCULLIS_WEBAUTHN_ORIGINS": None},
        "passkey site",
        "PORTCULLIS_WEBAUTHN_RP_ID",
        id="passkey-site-from-requests",
    ),
]


@pytest.mark.services
@pytest.mark.parametrize(("change", "item", "named"), WARNINGS)
def test_each_warning_exits_0(
    doctor: Doctor, production: dict[str, Any], change: dict[str, Any], item: str, named: str
) -> None:
    config = {**production, **change}
    config = {key: value for key, value in config.items() if value is not None}
    report = doctor(config)
    assert report.exit_code == 0, report.output
    assert report.items("FAIL") == set(), report.output
    assert report.items("WARN") == {item}, report.output
    assert named in report.findings[item].message, report.output
    assert report.summary == (len(STANDARDS) - 1, 1, 0)


def test_development_defaults_warn_but_pass(doctor: Doctor) -> None:
    """No Redis, no mail server, plain-HTTP links: warnings only (the suite's SQLite app with
    the real hash parameters and a strong key)."""
    report = doctor(
        {**REAL_HASH, "SECRET_KEY": secrets.token_hex(32), "TRUSTED_HOSTS": ["localhost"]}
    )
    assert report.exit_code == 0, report.output
    assert report.items("FAIL") == set(), report.output
    assert report.items("WARN") == {
        "shared limits",
        "mail delivery",
        "links in mail",
        "passkey site",
    }
    assert report.summary == (len(STANDARDS) - 4, 4, 0)


@pytest.mark.parametrize(("scope", "reminder"), [(True, False), ("portcullis", True)])
def test_security_headers_on_portcullis_pages_only_pass_with_a_reminder(
    doctor: Doctor, scope: object, reminder: bool
) -> None:
    report = doctor(
        {**REAL_HASH, "SECRET_KEY": secrets.token_hex(32), "PORTCULLIS_SECURITY_HEADERS": scope}
    )
    finding = report.findings["security headers"]
    assert finding.status == "PASS", report.output
    assert ("on Portcullis's pages (yours need their own)" in finding.message) is reminder


def test_doctor_output_names_no_secret(doctor: Doctor) -> None:
    key = secrets.token_hex(32)
    report = doctor({**REAL_HASH, "SECRET_KEY": key})
    assert key not in report.output
    assert key[:8] not in report.output


def test_the_suites_own_app_fails_only_on_its_cheap_hash(
    doctor: Doctor, client: FlaskClient
) -> None:
    """The doctor reads the configuration of a serving app and leaves it serving."""
    app: Flask = client.application
    report = doctor({}, app=app)
    assert report.exit_code == 1  # the suite's cheap hash parameters
    # The suite's cheap hash parameters, and no SERVER_NAME/TRUSTED_HOSTS for links.
    assert report.items("FAIL") == {"password hashing", "host of links"}, report.output
    assert client.get("/healthz").status_code == 200
