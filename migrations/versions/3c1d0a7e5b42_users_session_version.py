"""users carry a session version: logging out and changing the password end every session

Revision ID: 3c1d0a7e5b42
Revises: faf9d785aa1d
Create Date: 2026-12-01 11:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3c1d0a7e5b42'
down_revision = 'faf9d785aa1d'
branch_labels = None
depends_on = None


def upgrade():
    # Sessions issued before this version carry the bare user id, which no longer matches: the
    # admin logs in once more after the upgrade.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='1', nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
