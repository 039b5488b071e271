"""digests, channel rules (filters, quiet hours) and what an event was filtered by

Revision ID: e1f2a3b4c5d6
Revises: c4d8e2a1f7b3
Create Date: 2026-12-01 14:05:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e1f2a3b4c5d6'
down_revision = 'c4d8e2a1f7b3'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMNs (see c4d8e2a1f7b3: a batch on SQLite would copy and cascade).
    # Why a delivery waits to be folded into a digest ("rate", "quiet"); NULL: sent on its own.
    op.add_column('deliveries', sa.Column('fold', sa.String(length=8), nullable=True))
    # The digest message that carried this attempt (shared by every delivery folded into it).
    op.add_column('attempts', sa.Column('digest_id', sa.String(length=40), nullable=True))
    op.create_index('ix_attempts_digest_id', 'attempts', ['digest_id'])
    # A channel's filters and quiet hours, whatever its kind.
    op.add_column('channels', sa.Column('rules', sa.JSON(), nullable=True))
    # Which channels' filters left this event out, as codes with parameters.
    op.add_column('events', sa.Column('filtered', sa.JSON(), nullable=True))


def downgrade():
    op.drop_column('events', 'filtered')
    op.drop_column('channels', 'rules')
    op.drop_index('ix_attempts_digest_id', table_name='attempts')
    op.drop_column('attempts', 'digest_id')
    op.drop_column('deliveries', 'fold')
