"""channels: the signature check's last result, and whether the receiver accepted a forgery

Revision ID: d5a7c3e9b1f2
Revises: c4e8a1f2d9b3
Create Date: 2026-12-01 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd5a7c3e9b1f2'
down_revision = 'c4e8a1f2d9b3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signature_check_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('signature_check_status', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('signature_check_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('signature_check_detail', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('forgery_accepted_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.drop_column('forgery_accepted_at')
        batch_op.drop_column('signature_check_detail')
        batch_op.drop_column('signature_check_at')
        batch_op.drop_column('signature_check_status')
        batch_op.drop_column('signature_check_id')
