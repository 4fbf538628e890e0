"""Record when each step was added.

``Step.created_at`` says since when a step has waited for input, which
``flask tasks clear-steps --older-than`` judges it by. Steps recorded before
keep ``NULL`` there and count from their task's start.

Revision ID: qhana_tasks_0004
Revises: qhana_tasks_0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "qhana_tasks_0004"
down_revision = "qhana_tasks_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    timestamp = sa.TIMESTAMP(timezone=True).with_variant(
        mysql.DATETIME(fsp=6), "mysql", "mariadb"
    )
    op.add_column("Step", sa.Column("created_at", timestamp, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("Step") as batch_op:
        batch_op.drop_column("created_at")
