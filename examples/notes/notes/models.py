from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flask_portcullis import UserMixin

from . import db


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    """Portcullis's UserMixin declares id, username, email and password_hash (and its own
    columns); the app adds what it needs beside them."""

    __tablename__ = "users"
    display_name: Mapped[str | None] = mapped_column(sa.String(80))
    notes: Mapped[list[Note]] = relationship(back_populates="author", passive_deletes=True)


class Note(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    author: Mapped[User] = relationship(back_populates="notes")
