"""Index the audit log by user, event and id, for the checks made at every sign-in.

Revision ID: 0006_audit_sign_in_index
Revises: 0005_passkeys
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0006_audit_sign_in_index"
down_revision = "0005_passkeys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_user_id_event_id", "audit_events", ["user_id", "event", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_user_id_event_id", table_name="audit_events")
