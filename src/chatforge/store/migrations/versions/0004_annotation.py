"""annotation workbench: labels, annotations, turn ratings and the full-text index of messages

Revision ID: 0004_annotation
Revises: 0003_sessions
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_annotation"
down_revision = "0003_sessions"
branch_labels = None
depends_on = None

# What a message is found by: its text and its correction. Deleted messages are not indexed.
_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE message_search USING fts5(text, tokenize = 'unicode61')",
    """CREATE TRIGGER message_search_insert AFTER INSERT ON messages
       WHEN new.deleted_at IS NULL BEGIN
         INSERT INTO message_search(rowid, text)
         VALUES (new.id, new.body || ' ' || coalesce(new.corrected_body, ''));
       END""",
    """CREATE TRIGGER message_search_update
       AFTER UPDATE OF body, corrected_body, deleted_at ON messages BEGIN
         DELETE FROM message_search WHERE rowid = old.id;
         INSERT INTO message_search(rowid, text)
         SELECT new.id, new.body || ' ' || coalesce(new.corrected_body, '')
         WHERE new.deleted_at IS NULL;
       END""",
    """CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
         DELETE FROM message_search WHERE rowid = old.id;
       END""",
    """INSERT INTO message_search(rowid, text)
       SELECT id, body || ' ' || coalesce(corrected_body, '') FROM messages
       WHERE deleted_at IS NULL""",
]
# Must stay identical to the expression in services/search.py, or the planner ignores the index.
_POSTGRES_FTS = (
    "CREATE INDEX ix_messages_search ON messages USING gin "
    "(to_tsvector('simple'::regconfig, body || ' ' || coalesce(corrected_body, '')))"
)


def upgrade() -> None:
    op.create_table(
        "annotation_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotation_labels")),
        sa.UniqueConstraint("name", name=op.f("uq_annotation_labels_name")),
    )
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.String(length=16), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["users.id"],
            name=op.f("fk_annotations_annotator_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_annotations_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
        sa.UniqueConstraint(
            "conversation_id", "annotator_id", name=op.f("uq_annotations_conversation_id")
        ),
    )
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_annotations_annotator_id"), ["annotator_id"], unique=False
        )
    op.create_table(
        "annotation_label_links",
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("label_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotation_id"],
            ["annotations.id"],
            name=op.f("fk_annotation_label_links_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["label_id"],
            ["annotation_labels.id"],
            name=op.f("fk_annotation_label_links_label_id_annotation_labels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "annotation_id", "label_id", name=op.f("pk_annotation_label_links")
        ),
    )
    with op.batch_alter_table("annotation_label_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_annotation_label_links_label_id"), ["label_id"], unique=False
        )
    op.create_table(
        "turn_ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["users.id"],
            name=op.f("fk_turn_ratings_annotator_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_turn_ratings_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_turn_ratings_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turn_ratings")),
        sa.UniqueConstraint("message_id", "annotator_id", name=op.f("uq_turn_ratings_message_id")),
    )
    with op.batch_alter_table("turn_ratings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_turn_ratings_annotator_id"), ["annotator_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_turn_ratings_conversation_id"), ["conversation_id"], unique=False
        )

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(_POSTGRES_FTS)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS message_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS message_search")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_messages_search")
    with op.batch_alter_table("turn_ratings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_turn_ratings_conversation_id"))
        batch_op.drop_index(batch_op.f("ix_turn_ratings_annotator_id"))
    op.drop_table("turn_ratings")
    with op.batch_alter_table("annotation_label_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotation_label_links_label_id"))
    op.drop_table("annotation_label_links")
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotations_annotator_id"))
    op.drop_table("annotations")
    op.drop_table("annotation_labels")
