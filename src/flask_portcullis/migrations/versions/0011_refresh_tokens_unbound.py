"""Refresh tokens no longer point at user_sessions by a foreign key: their session may live
in Redis (PORTCULLIS_SESSION_STORE). Ending a session deletes its tokens in code.

Revision ID: 0011_refresh_tokens_unbound
Revises: 0010_provider_links
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_refresh_tokens_unbound"
down_revision = "0010_provider_links"
branch_labels = None
depends_on = None

FOREIGN_KEY = "fk_refresh_tokens_session_id_user_sessions"


def upgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")


def downgrade() -> None:
    # Tokens whose session is not a row (a Redis store's) cannot keep a foreign key.
    op.execute(
        sa.text("DELETE FROM refresh_tokens WHERE session_id NOT IN (SELECT id FROM user_sessions)")
    )
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.create_foreign_key(
            FOREIGN_KEY, "user_sessions", ["session_id"], ["id"], ondelete="CASCADE"
        )
