"""Merge the per-area branches (train, serve, models, loop) into one head.

Revision ID: 0007_merge
Revises: 0002_train, 0003_serve, 0004_models, 0006_loop
"""

revision = "0007_merge"
down_revision = ("0002_train", "0003_serve", "0004_models", "0006_loop")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
