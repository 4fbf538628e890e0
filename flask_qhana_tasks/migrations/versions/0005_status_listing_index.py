"""Index tasks by status and start, for listing by status, newest first.

The index on ``task_status`` alone made the database sort every task of a
status to list the newest: at a million tasks, most of a second on SQLite. The
new index on ``(task_status, started_at, id)`` reads them in order, and serves
lookups by status alone, so it replaces the old one.

Revision ID: qhana_tasks_0005
Revises: qhana_tasks_0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "qhana_tasks_0005"
down_revision = "qhana_tasks_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_ProcessingTask_task_status_started_at",
        "ProcessingTask",
        ["task_status", "started_at", "id"],
    )
    op.drop_index("ix_ProcessingTask_task_status", table_name="ProcessingTask")


def downgrade() -> None:
    op.create_index("ix_ProcessingTask_task_status", "ProcessingTask", ["task_status"])
    op.drop_index(
        "ix_ProcessingTask_task_status_started_at", table_name="ProcessingTask"
    )
