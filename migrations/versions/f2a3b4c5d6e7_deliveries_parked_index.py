"""an index for a digest's gather: a channel's deliveries parked for a digest

Revision ID: f2a3b4c5d6e7
Revises: e1f2a3b4c5d6
Create Date: 2026-12-01 17:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f2a3b4c5d6e7'
down_revision = 'e1f2a3b4c5d6'
branch_labels = None
depends_on = None


def upgrade():
    # notify.digests.gather: WHERE channel_id = ? AND status IN (…) AND fold … AND next_attempt_at <= ?.
    # Partial: only the deliveries parked for a digest (fold set) are in it, a handful beside the history.
    op.create_index('ix_deliveries_parked', 'deliveries', ['channel_id', 'status', 'fold', 'next_attempt_at'],
                    postgresql_where=sa.text('fold IS NOT NULL'), sqlite_where=sa.text('fold IS NOT NULL'))


def downgrade():
    op.drop_index('ix_deliveries_parked', table_name='deliveries')
