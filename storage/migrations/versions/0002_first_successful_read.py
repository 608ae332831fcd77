"""sources.first_read_at: when a source was first read successfully

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00

Until now "first read" meant `last_checked_at IS NULL`, but a failed check also sets
`last_checked_at`: a source whose first fetch failed had its next good read treated as a
regular one, and every item of its feed went to the moderators (issue 15).

Existing rows: `first_read_at` is set to `last_checked_at` when the source was read
successfully at least once, that is when its last check succeeded (`last_error IS NULL`)
or when it has a body hash (stored by successful reads only, kept through later
failures). The exact time of that first read is not kept anywhere; `last_checked_at` is
no earlier than it, and only "was it ever read" drives a decision. A source that was only
ever checked with failures keeps NULL: its next good read is its first, and queues only
the initial picks.
"""

from alembic import op
import sqlalchemy as sa
import storage.tables


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("first_read_at", storage.tables.UTCDateTime(), nullable=True)
        )
    op.execute(
        "UPDATE sources SET first_read_at = last_checked_at"
        " WHERE last_checked_at IS NOT NULL"
        " AND (last_error IS NULL OR body_hash IS NOT NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("first_read_at")
