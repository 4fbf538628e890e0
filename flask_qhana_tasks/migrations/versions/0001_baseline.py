"""Create the task tables as the QHAna plugin runner defines them.

This is the schema an existing QHAna plugin-runner database already has, so such
a database is adopted by stamping this revision; the next revisions then bring it
up to date.

Revision ID: qhana_tasks_0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "qhana_tasks_0001"
down_revision = None
branch_labels = ("qhana_tasks",)
depends_on = None


def _task_reference(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["ProcessingTask.id"], name=f"fk_{table}_{column}_ProcessingTask"
    )


def upgrade() -> None:
    op.create_table(
        "ProcessingTask",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_name", sa.String(length=500), nullable=True),
        sa.Column("started_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("finished_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("multi_step", sa.Boolean(), nullable=True),
        sa.Column("current_step", sa.Integer(), nullable=True),
        sa.Column("progress_value", sa.Float(), nullable=True),
        sa.Column("progress_start", sa.Float(), nullable=True),
        sa.Column("progress_target", sa.Float(), nullable=True),
        sa.Column("progress_unit", sa.String(length=100), nullable=True),
        sa.Column("task_status", sa.String(length=100), nullable=True),
        sa.Column("task_log", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ProcessingTask"),
    )
    op.create_table(
        "Step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=500), nullable=True),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("href", sa.String(length=500), nullable=True),
        sa.Column("ui_href", sa.String(length=500), nullable=True),
        sa.Column("cleared", sa.Boolean(), nullable=True),
        _task_reference("Step", "id"),
        sa.PrimaryKeyConstraint("id", "number", name="pk_Step"),
    )
    op.create_table(
        "TaskFile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("security_tag", sa.String(length=64), nullable=False),
        sa.Column("storage_provider", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=500), nullable=False),
        sa.Column("file_storage_data", sa.Text(), nullable=False),
        sa.Column("file_type", sa.String(length=255), nullable=True),
        sa.Column("mimetype", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        _task_reference("TaskFile", "task_id"),
        sa.PrimaryKeyConstraint("id", name="pk_TaskFile"),
    )
    op.create_index("ix_TaskFile_file_name", "TaskFile", ["file_name"])
    op.create_table(
        "TaskLink",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("href", sa.String(length=500), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        _task_reference("TaskLink", "task_id"),
        sa.PrimaryKeyConstraint("id", name="pk_TaskLink"),
    )
    op.create_table(
        "TaskUpdateSubscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_href", sa.String(length=500), nullable=False),
        sa.Column("task_href", sa.String(length=500), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        _task_reference("TaskUpdateSubscription", "task_id"),
        sa.PrimaryKeyConstraint("id", name="pk_TaskUpdateSubscription"),
    )


def downgrade() -> None:
    op.drop_table("TaskUpdateSubscription")
    op.drop_table("TaskLink")
    op.drop_index("ix_TaskFile_file_name", table_name="TaskFile")
    op.drop_table("TaskFile")
    op.drop_table("Step")
    op.drop_table("ProcessingTask")
