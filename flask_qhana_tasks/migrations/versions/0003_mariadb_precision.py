"""Keep microseconds and long texts on MariaDB and MySQL.

Their ``TIMESTAMP`` keeps whole seconds and converts values by the session's
time zone, and their ``TEXT`` ends at 64 KiB. The timestamps become
``DATETIME(6)``, holding naive UTC, and the texts ``LONGTEXT``. Other databases
are not changed.

Revision ID: qhana_tasks_0003
Revises: qhana_tasks_0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "qhana_tasks_0003"
down_revision = "qhana_tasks_0002"
branch_labels = None
depends_on = None

#: The timestamp columns, each with the table it belongs to.
TIMESTAMPS = (
    ("ProcessingTask", "started_at"),
    ("ProcessingTask", "finished_at"),
    ("TaskFile", "created_at"),
)

#: The text columns, each with its table and whether it takes NULL.
TEXTS = (
    ("ProcessingTask", "parameters", True),
    ("ProcessingTask", "task_log", False),
    ("TaskFile", "file_storage_data", False),
)


def _on_mysql() -> bool:
    return op.get_context().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    if not _on_mysql():
        return

    for table, column in TIMESTAMPS:
        op.alter_column(
            table,
            column,
            type_=mysql.DATETIME(fsp=6),
            existing_type=sa.TIMESTAMP(timezone=True),
            existing_nullable=True,
        )

    for table, column, nullable in TEXTS:
        op.alter_column(
            table,
            column,
            type_=mysql.LONGTEXT(),
            existing_type=sa.Text(),
            existing_nullable=nullable,
        )


def downgrade() -> None:
    if not _on_mysql():
        return

    for table, column, nullable in TEXTS:
        op.alter_column(
            table,
            column,
            type_=sa.Text(),
            existing_type=mysql.LONGTEXT(),
            existing_nullable=nullable,
        )

    for table, column in TIMESTAMPS:
        op.alter_column(
            table,
            column,
            type_=sa.TIMESTAMP(timezone=True),
            existing_type=mysql.DATETIME(fsp=6),
            existing_nullable=True,
        )
