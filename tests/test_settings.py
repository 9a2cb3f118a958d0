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
    assert revision == "0009_constraint_names"
