"""Settings are read once, validated at start-up, and configurable from the environment."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from flask_portcullis import ConfigurationError, Settings, get_state

from .conftest import make_app


def test_defaults_are_safe() -> None:
    settings = Settings()
    assert settings.password_min_length == 8
    assert settings.argon2_is_owasp_strength
    assert settings.session_idle_timeout == 30 * 60
    assert settings.session_lifetime == 12 * 60 * 60
    assert settings.secure_cookies


def test_passkey_origins_may_be_subdomains_of_the_relying_party() -> None:
    settings = Settings.from_config(
        {
            "PORTCULLIS_WEBAUTHN_RP_ID": "example.com",
            "PORTCULLIS_WEBAUTHN_ORIGINS": ["https://example.com", "https://login.example.com"],
        }
    )
    assert settings.webauthn_origins == ("https://example.com", "https://login.example.com")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"PORTCULLIS_PASSWORD_MIN_LENGTH": 6}, "at least 8"),
        ({"PORTCULLIS_PASSWORD_MAX_LENGTH": 32}, "at least 64"),
        ({"PORTCULLIS_SESSION_IDLE_TIMEOUT": 0}, "positive"),
        ({"PORTCULLIS_SESSION_LIFETIME": "3600"}, "must be int"),
        ({"PORTCULLIS_SECURE_COOKIES": 1}, "must be bool"),
        ({"PORTCULLIS_ARGON2_MEMORY_COST": 4}, "MEMORY_COST"),
        ({"PORTCULLIS_SESSION_IDLE_TIMEOUT": 50_000}, "cannot exceed"),
        ({"PORTCULLIS_REMEMBER_LIFETIME": 3600}, "cannot be shorter"),
        ({"PORTCULLIS_EMAIL_VERIFICATION": "sometimes"}, "required, optional, off"),
        ({"PORTCULLIS_MAIL_LIMIT_PER_ADDRESS": "lots"}, "MAIL_LIMIT_PER_ADDRESS"),
        ({"PORTCULLIS_REDIS_URL": "localhost:6379"}, "redis://"),
        ({"PORTCULLIS_RESET_PASSWORD_LIFETIME": -5}, "positive"),
        ({"RATELIMIT_ENABLED": "no"}, "must be bool"),
        ({"PORTCULLIS_WEBAUTHN_RP_ID": "https://example.com"}, "without scheme"),
        ({"PORTCULLIS_WEBAUTHN_RP_ID": "example.com"}, "together"),
        ({"PORTCULLIS_WEBAUTHN_ORIGINS": ["https://example.com"]}, "together"),
        ({"PORTCULLIS_WEBAUTHN_ORIGINS": ["example.com"]}, "origins like"),
        (
            {
                "PORTCULLIS_WEBAUTHN_RP_ID": "example.com",
                "PORTCULLIS_WEBAUTHN_ORIGINS": ["https://example.com", "https://evil.com"],
            },
            "https://evil.com is not on example.com",
        ),
    ],
)
def test_bad_values_fail_at_start_up_naming_the_key(
    config: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_config(config)


GOOD_CSP = {
    "img-src": ["https://images.example.com"],
    "script-src": ["https://js.example.com", "'sha256-AbC+/dEf0123456789xyzXYZabcdefghijklmnopq='"],
    "style-src": ["'unsafe-inline'"],  # allowed outside script: no code runs from CSS
    "report-uri": ["https://csp.example.com/report"],
    "upgrade-insecure-requests": [],
}


def test_csp_additions_are_kept_as_pairs_in_the_given_order() -> None:
    settings = Settings.from_config({"PORTCULLIS_CSP": GOOD_CSP})
    assert settings.csp == tuple((name, tuple(sources)) for name, sources in GOOD_CSP.items())
    assert Settings().csp == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["img-src", "https://x.example"], "PORTCULLIS_CSP must be a mapping"),
        ("img-src https://x.example", "PORTCULLIS_CSP must be a mapping"),
        ({"img-source": ["https://x.example"]}, "unknown or unsupported directive 'img-source'"),
        ({"sandbox": ["allow-forms"]}, "unsupported directive 'sandbox'"),
        ({"img-src": "https://x.example"}, r"PORTCULLIS_CSP\['img-src'\] must be a list"),
        ({"img-src": [3]}, r"PORTCULLIS_CSP\['img-src'\] must be a list"),
        ({"img-src": []}, r"PORTCULLIS_CSP\['img-src'\] lists no source"),
        ({"img-src": ["https://a.example; script-src *"]}, "is not one source"),
        ({"img-src": ["https://a.example,https://b.example"]}, "is not one source"),
        ({"img-src": ["https://a.example https://b.example"]}, "is not one source"),
        ({"img-src": ["https://a.example\n"]}, "is not one source"),
        ({"connect-src": ["self"]}, "keywords take single quotes"),
        ({"connect-src": ["'self"]}, "not a CSP keyword"),
        ({"connect-src": ["'none'"]}, "'none' cannot be added"),
        ({"script-src": ["'nonce-abc123'"]}, "fixed nonce"),
        ({"script-src": ["'unsafe-inline'"]}, r"'unsafe-inline' is refused in script-src"),
        ({"script-src": ["'unsafe-eval'"]}, r"'unsafe-eval' is refused in script-src"),
        ({"script-src-elem": ["'unsafe-inline'"]}, "refused in script-src-elem"),
        ({"script-src-attr": ["'unsafe-hashes'"]}, "refused in script-src-attr"),
        ({"script-src": ["https:"]}, "https: is refused in script-src"),
        ({"script-src": ["data:"]}, "data: is refused in script-src"),
        ({"script-src": ["*"]}, r"\* is refused in script-src"),
        ({"upgrade-insecure-requests": ["https:"]}, "takes no sources"),
    ],
)
def test_bad_csp_additions_are_refused_naming_the_key(value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        Settings.from_config({"PORTCULLIS_CSP": value})
    assert "PORTCULLIS_CSP" in str(refused.value)


def test_unsafe_script_sources_are_refused_with_the_way_out() -> None:
    with pytest.raises(ConfigurationError, match='PORTCULLIS_SECURITY_HEADERS to "portcullis"'):
        Settings.from_config({"PORTCULLIS_CSP": {"script-src": ["'unsafe-inline'"]}})


@pytest.mark.parametrize(
    ("value", "scope"),
    [(True, "all"), (False, "off"), ("portcullis", "portcullis"), ("all", "all"), ("off", "off")],
)
def test_security_headers_take_a_flag_or_a_scope(value: object, scope: str) -> None:
    assert Settings.from_config({"PORTCULLIS_SECURITY_HEADERS": value}).security_headers == scope
    assert Settings().security_headers == "all"


@pytest.mark.parametrize(
    ("value", "message"), [("pages", 'true, "portcullis" or false'), (1, "got 1")]
)
def test_bad_security_header_scopes_are_refused(value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_config({"PORTCULLIS_SECURITY_HEADERS": value})


def test_host_knobs_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASK_PORTCULLIS_CSP", '{"img-src": ["https://images.example.com"]}')
    monkeypatch.setenv("FLASK_PORTCULLIS_SECURITY_HEADERS", "portcullis")  # a bare word
    monkeypatch.setenv("FLASK_PORTCULLIS_API", "false")
    settings = get_state(make_app(tmp_path)).settings
    assert settings.csp == (("img-src", ("https://images.example.com",)),)
    assert settings.security_headers == "portcullis"
    assert settings.api is False


def test_settings_come_from_flask_prefixed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASK_PORTCULLIS_SESSION_IDLE_TIMEOUT", "600")
    monkeypatch.setenv("FLASK_PORTCULLIS_REGISTRATION", "false")
    app = make_app(tmp_path)
    settings = get_state(app).settings
    assert settings.session_idle_timeout == 600
    assert settings.registration is False
    assert app.test_client().get("/register").status_code == 404


def test_demo_keeps_a_generated_secret_key_private(tmp_path: Path) -> None:
    from flask_portcullis.demo import create_app

    instance = tmp_path / "instance"
    config = {"SQLALCHEMY_DATABASE_URI": "sqlite://"}
    first = create_app(config, instance_path=str(instance))
    second = create_app(config, instance_path=str(instance))
    key_file = instance / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 64


def test_concurrent_first_starts_share_one_complete_secret_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from flask_portcullis.demo import instance_secret_key

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: instance_secret_key(tmp_path), range(16)))
    assert len(keys) == 1
    assert len(keys.pop()) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary files left


def test_an_empty_secret_key_file_is_refused(tmp_path: Path) -> None:
    from flask_portcullis.demo import instance_secret_key

    (tmp_path / "secret_key").write_text("")
    with pytest.raises(RuntimeError, match="no usable secret key"):
        instance_secret_key(tmp_path)


def test_the_demo_migrates_with_the_command_make_run_uses(tmp_path: Path) -> None:
    """``flask --app flask_portcullis.demo db upgrade`` finds the shipped migrations by
    itself (the demo points Flask-Migrate at them), from any working directory."""
    env = {
        **os.environ,
        "PORTCULLIS_INSTANCE_PATH": str(tmp_path / "instance"),
        "FLASK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'demo.db'}",
    }
    flask = Path(sys.executable).parent / "flask"
    done = subprocess.run(
        [str(flask), "--app", "flask_portcullis.demo", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "demo.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        [(revision,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"users", "user_sessions", "audit_events", "passkeys"} <= tables
    assert revision == "0012_invitations"
