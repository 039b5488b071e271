"""claim tokens, and one attempt row per attempt number

Revision ID: b7c1e2d3a4f5
Revises: 3c1d0a7e5b42
Create Date: 2026-11-28 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7c1e2d3a4f5'
down_revision = '3c1d0a7e5b42'
branch_labels = None
depends_on = None


def _renumber_repeated_attempts(connection) -> None:
    """Before the unique index: a worker that outlived its lease could write an attempt number
    twice. Such deliveries get their attempts numbered again 1, 2, … in the order they were made
    (no row is deleted: every attempt stays in the history), and an attempt count that covers them."""
    attempts = sa.table("attempts", sa.column("id"), sa.column("delivery_id"), sa.column("number"),
                        sa.column("started_at"))
    deliveries = sa.table("deliveries", sa.column("id"), sa.column("attempt_count"))
    repeated = connection.execute(
        sa.select(attempts.c.delivery_id).group_by(attempts.c.delivery_id, attempts.c.number)
        .having(sa.func.count() > 1).distinct()).scalars().all()
    for delivery_id in repeated:
        ids = connection.execute(sa.select(attempts.c.id).where(attempts.c.delivery_id == delivery_id)
                                 .order_by(attempts.c.started_at, attempts.c.id)).scalars().all()
        # Out of the way first, so that no intermediate state repeats a number either.
        connection.execute(attempts.update().where(attempts.c.delivery_id == delivery_id)
                           .values(number=-attempts.c.id))
        for number, attempt_id in enumerate(ids, start=1):
            connection.execute(attempts.update().where(attempts.c.id == attempt_id).values(number=number))
        connection.execute(deliveries.update().where(deliveries.c.id == delivery_id,
                                                     deliveries.c.attempt_count < len(ids))
                           .values(attempt_count=len(ids)))


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))

    _renumber_repeated_attempts(op.get_bind())
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        # The unique index leads with delivery_id, so it serves every lookup the old index did.
        batch_op.create_index('uq_attempts_delivery_number', ['delivery_id', 'number'], unique=True)
        batch_op.drop_index(batch_op.f('ix_attempts_delivery_id'))


def downgrade():
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attempts_delivery_id'), ['delivery_id'], unique=False)
        batch_op.drop_index('uq_attempts_delivery_number')

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('claim_token')
