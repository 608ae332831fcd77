"""one sender per bot token: leases, claim owners, unknown deliveries reported

A sender takes the lease `sender:<token hash>` before it claims anything; its claims carry
its name (`claimed_by`), so a process that lost the lease can no longer mark a delivery
`sending`. `unknown_reported` remembers which possibly-lost deliveries the admins were told of.

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.tables


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('leases',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('acquired_at', storage.tables.UTCDateTime(), nullable=False),
    sa.Column('expires_at', storage.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
        batch_op.add_column(sa.Column('unknown_reported', sa.Boolean(), nullable=False, server_default=sa.false()))
    # The server default only fills existing rows; the tables declare none.
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.alter_column('unknown_reported', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('unknown_reported')
        batch_op.drop_column('claimed_by')
    op.drop_table('leases')
