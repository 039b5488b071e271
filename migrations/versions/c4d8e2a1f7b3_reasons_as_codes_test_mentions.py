"""failure reasons stored as codes beside their English copy; a Test may ask for mentions

Revision ID: c4d8e2a1f7b3
Revises: d5a7c3e9b1f2
Create Date: 2026-12-01 11:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4d8e2a1f7b3'
down_revision = 'd5a7c3e9b1f2'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMNs, not batches: on SQLite a batch copies the table, and dropping the old one
    # would cascade (events → deliveries → attempts). Existing rows keep their text and get no
    # code: they are shown as stored (notify.reasons).
    op.add_column('attempts', sa.Column('error_code', sa.JSON(), nullable=True))
    op.add_column('deliveries', sa.Column('last_error_code', sa.JSON(), nullable=True))
    op.add_column('channels', sa.Column('attention_code', sa.JSON(), nullable=True))
    op.add_column('events', sa.Column('test_mentions', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    # DROP COLUMN itself (SQLite 3.35+), for the same reason.
    op.drop_column('events', 'test_mentions')
    op.drop_column('channels', 'attention_code')
    op.drop_column('deliveries', 'last_error_code')
    op.drop_column('attempts', 'error_code')
