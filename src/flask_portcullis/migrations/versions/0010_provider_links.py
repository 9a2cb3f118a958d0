"""Provider links: the identities at sign-in providers each account signs in with.

Revision ID: 0010_provider_links
Revises: 0009_constraint_names
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

revision = "0010_provider_links"
down_revision = "0009_constraint_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_provider_links"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_provider_links_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("provider", "subject", name="uq_provider_links_provider_subject"),
        sa.UniqueConstraint("user_id", "provider", name="uq_provider_links_user_id_provider"),
    )


def downgrade() -> None:
    op.drop_table("provider_links")
