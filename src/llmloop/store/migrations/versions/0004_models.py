"""models area (issue 7): lineage of surgery versions, and exports (GGUF) that are not versions

Revision ID: 0004_models
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_models'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('version_lineage',
    sa.Column('version', sa.String(length=60), nullable=False),
    sa.Column('operation', sa.String(length=40), nullable=False),
    sa.Column('parents', sa.JSON(), nullable=False),
    sa.Column('recipe', sa.JSON(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('version')
    )
    op.create_table('model_exports',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('version', sa.String(length=60), nullable=False),
    sa.Column('format', sa.String(length=20), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_model_exports_version'), 'model_exports', ['version'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_model_exports_version'), table_name='model_exports')
    op.drop_table('model_exports')
    op.drop_table('version_lineage')
