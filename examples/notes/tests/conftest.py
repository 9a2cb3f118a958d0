"""The notes app's own tests: the app fixture, and Portcullis's kit for the rest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import flask_migrate
import pytest
from flask import Flask

from notes import create_app, db

pytest_plugins = ["flask_portcullis.testing"]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'notes.db'}",
            "WTF_CSRF_ENABLED": False,
        }
    )
    with app.app_context():
        flask_migrate.upgrade()  # the app's own migrations, the adoption included
    yield app
    with app.app_context():
        db.engine.dispose()
