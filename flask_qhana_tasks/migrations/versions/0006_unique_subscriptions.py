"""Let a webhook subscribe to an event of a task once.

A unique index on ``TaskUpdateSubscription`` covers the task, the webhook and
the event type. ``event_type`` is ``NULL`` for a subscription to every event,
and unique indexes take NULLs as distinct on every supported database, so the
index reads the event through ``event_key``, a generated column that is never
``NULL``: ``''`` for ``NULL``, the event type after a ``'='`` otherwise.

Duplicate subscriptions that adopted databases hold are deleted first; of each
set of equal rows, the one with the smallest id stays.

Revision ID: qhana_tasks_0006
Revises: qhana_tasks_0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "qhana_tasks_0006"
down_revision = "qhana_tasks_0005"
branch_labels = None
depends_on = None

#: How the foreign keys are named, for SQLite, where batch mode copies the table.
NAMING_CONVENTION = {
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"
}

TABLE = "TaskUpdateSubscription"
INDEX = "uq_TaskUpdateSubscription_task_id"

#: How many duplicates one DELETE statement removes.
DELETE_BATCH = 500


def _event_key() -> sa.Column[str]:
    event_type = sa.column("event_type", sa.String())
    expression = sa.case((event_type.is_(None), ""), else_=sa.literal("=") + event_type)
    return sa.Column(
        "event_key", sa.String(65), sa.Computed(expression, persisted=True)
    )


def _duplicate_ids() -> list[int]:
    """Return the ids of the subscriptions that repeat an older one."""
    table = sa.table(
        TABLE,
        sa.column("id", sa.Integer()),
        sa.column("task_id", sa.Integer()),
        sa.column("webhook_href", sa.String()),
        sa.column("event_type", sa.String()),
    )
    older = table.alias("older")
    same_event = sa.or_(
        older.c.event_type == table.c.event_type,
        sa.and_(older.c.event_type.is_(None), table.c.event_type.is_(None)),
    )
    query = (
        sa.select(table.c.id)
        .where(
            sa.exists().where(
                older.c.task_id == table.c.task_id,
                older.c.webhook_href == table.c.webhook_href,
                same_event,
                older.c.id < table.c.id,
            )
        )
        .order_by(table.c.id)
    )
    # Selected first and deleted by id: MariaDB refuses a DELETE whose subquery
    # reads the table it deletes from.
    return list(op.get_bind().scalars(query))


def upgrade() -> None:
    duplicates = _duplicate_ids()
    table = sa.table(TABLE, sa.column("id", sa.Integer()))

    for start in range(0, len(duplicates), DELETE_BATCH):
        batch = duplicates[start : start + DELETE_BATCH]
        op.execute(table.delete().where(table.c.id.in_(batch)))

    # SQLite cannot add a stored generated column in place: batch mode copies
    # the table there. Other databases add the column directly.
    with op.batch_alter_table(TABLE, naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.add_column(_event_key())

    op.create_index(INDEX, TABLE, ["task_id", "webhook_href", "event_key"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)

    with op.batch_alter_table(TABLE, naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_column("event_key")
