"""bots and channels: per-user bot state, interaction log, processed inbound message ids

Revision ID: 0002_bots
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_bots"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "message_id", name=op.f("pk_inbound_messages")),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbound_messages_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "bot_interactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("keyword", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_bot_interactions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_interactions")),
    )
    with op.batch_alter_table("bot_interactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bot_interactions_bot_created_at", ["bot", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_bot_interactions_quota", ["bot", "user_id", "counted", "created_at"], unique=False
        )

    op.create_table(
        "bot_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=True),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("idle_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_bot_states_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_states")),
        sa.UniqueConstraint("bot", "user_id", name=op.f("uq_bot_states_bot")),
    )
    with op.batch_alter_table("bot_states", schema=None) as batch_op:
        batch_op.create_index("ix_bot_states_idle_deadline", ["idle_deadline"], unique=False)
        batch_op.create_index(batch_op.f("ix_bot_states_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bot_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bot_states_user_id"))
        batch_op.drop_index("ix_bot_states_idle_deadline")
    op.drop_table("bot_states")

    with op.batch_alter_table("bot_interactions", schema=None) as batch_op:
        batch_op.drop_index("ix_bot_interactions_quota")
        batch_op.drop_index("ix_bot_interactions_bot_created_at")
    op.drop_table("bot_interactions")

    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_messages_received_at"))
    op.drop_table("inbound_messages")
