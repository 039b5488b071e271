"""events remember their order number

Revision ID: c4e8a1f2d9b3
Revises: b7c1e2d3a4f5
Create Date: 2026-12-01 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4e8a1f2d9b3'
down_revision = 'b7c1e2d3a4f5'
branch_labels = None
depends_on = None

# Events recorded before this version learn their order number (`data.order.order_no`, a string
# or an integer, trimmed, cut to 100 characters, as notify.dispatch.order_number does) in one
# statement per database. Stored data that is not valid JSON, or that carries a lone surrogate or
# NUL escape (which the databases cannot turn into text), keeps none: the CASE tests that first,
# because a database may evaluate the conditions of a WHERE in any order.
_BACKFILL = {
    "sqlite": """
        UPDATE events SET order_no = CASE
            WHEN NOT json_valid(data) OR lower(data) GLOB '*\\ud[89a-f]*' OR data GLOB '*\\u0000*' THEN NULL
            WHEN json_type(data, '$.order.order_no') IN ('text', 'integer')
                THEN NULLIF(substr(trim(CAST(json_extract(data, '$.order.order_no') AS TEXT)), 1, 100), '')
        END
        WHERE instr(data, '"order_no"') > 0
    """,
    "postgresql": """
        UPDATE events SET order_no = CASE
            WHEN data::text ~* '\\\\u(0000|d[89a-f])' THEN NULL
            WHEN json_typeof(data -> 'order' -> 'order_no') = 'string'
                THEN NULLIF(left(btrim(data -> 'order' ->> 'order_no'), 100), '')
            WHEN json_typeof(data -> 'order' -> 'order_no') = 'number'
                 AND (data -> 'order' -> 'order_no')::text ~ '^-?[0-9]+$'
                THEN data -> 'order' ->> 'order_no'
        END
        WHERE strpos(data::text, '"order_no"') > 0
    """,
}


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_no', sa.String(length=100), nullable=True))
        batch_op.create_index(batch_op.f('ix_events_order_no'), ['order_no'], unique=False)
    statement = _BACKFILL.get(op.get_bind().dialect.name)
    if statement:
        op.execute(statement)


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_order_no'))
        batch_op.drop_column('order_no')
