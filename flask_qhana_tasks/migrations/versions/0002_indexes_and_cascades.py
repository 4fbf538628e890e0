"""Index the columns tasks are looked up by; delete children with their task.

Adds indexes on the child tables' ``task_id`` and on ``ProcessingTask``'s
``task_name``, ``started_at``, ``finished_at`` and ``task_status``, and recreates
the child tables' foreign keys with ``ON DELETE CASCADE``.

Revision ID: qhana_tasks_0002
Revises: qhana_tasks_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "qhana_tasks_0002"
down_revision = "qhana_tasks_0001"
branch_labels = None
depends_on = None

#: How the foreign keys are named, in every database.
NAMING_CONVENTION = {
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"
}

#: The columns of ``ProcessingTask`` that get an index.
TASK_COLUMNS = ("task_name", "started_at", "finished_at", "task_status")

#: Each child table with the column that refers to its task.
CHILDREN = (
    ("Step", "id"),
    ("TaskFile", "task_id"),
    ("TaskLink", "task_id"),
    ("TaskUpdateSubscription", "task_id"),
)


def _drop_task_references() -> None:
    for table, column in CHILDREN:
        # Batch mode recreates the table on SQLite, which cannot alter a foreign
        # key in place; other databases alter it directly. The naming convention
        # names the reflected key where the SQLite dialect does not.
        with op.batch_alter_table(
            table, naming_convention=NAMING_CONVENTION
        ) as batch_op:
            batch_op.drop_constraint(_name(table, column), type_="foreignkey")


def _create_task_references(ondelete: str | None) -> None:
    for table, column in CHILDREN:
        with op.batch_alter_table(
            table, naming_convention=NAMING_CONVENTION
        ) as batch_op:
            batch_op.create_foreign_key(
                _name(table, column),
                "ProcessingTask",
                [column],
                ["id"],
                ondelete=ondelete,
            )


def _name(table: str, column: str) -> str:
    return f"fk_{table}_{column}_ProcessingTask"


def upgrade() -> None:
    for column in TASK_COLUMNS:
        op.create_index(f"ix_ProcessingTask_{column}", "ProcessingTask", [column])

    for table, column in CHILDREN:
        if column != "id":
            op.create_index(f"ix_{table}_{column}", table, [column])

    _drop_task_references()
    _create_task_references("CASCADE")


def downgrade() -> None:
    # MariaDB keeps an index while a foreign key needs it: drop the keys first.
    _drop_task_references()

    for table, column in CHILDREN:
        if column != "id":
            op.drop_index(f"ix_{table}_{column}", table_name=table)

    for column in TASK_COLUMNS:
        op.drop_index(f"ix_ProcessingTask_{column}", table_name="ProcessingTask")

    _create_task_references(None)
