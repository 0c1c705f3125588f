"""The schema as SQLAlchemy Core tables: what queries are written against.

Changing a table here needs a new migration under ``migrations/versions`` (Alembic); the test
``tests/store/test_migrations.py`` checks that the migrated schema matches these tables.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("kind", sa.String(20), nullable=False),  # pt | sft | preference
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id"), nullable=False),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("dataset_versions.id"), nullable=True),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("source_format", sa.String(40), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("created_by", sa.String(200), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_version"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("stage", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # queued|running|succeeded|failed|cancelled
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("output_dir", sa.Text, nullable=False),
    sa.Column("log_path", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)

job_metrics = sa.Table(
    "job_metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), nullable=False, index=True),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("values", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(60), nullable=False, unique=True),
    sa.Column("kind", sa.String(20), nullable=False),  # completion | chat
    sa.Column("base_model", sa.Text, nullable=False),
    sa.Column("adapter_path", sa.Text, nullable=True),
    sa.Column("parent", sa.String(60), nullable=True),
    sa.Column("job_id", sa.String(40), nullable=True),
    sa.Column("dataset_versions", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("stage", sa.String(20), nullable=False),  # candidate|canary|production|archived
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("name", sa.String(60), primary_key=True),
    sa.Column("version", sa.String(60), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

alias_events = sa.Table(
    "alias_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alias", sa.String(60), nullable=False),
    sa.Column("old_version", sa.String(60), nullable=True),
    sa.Column("new_version", sa.String(60), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Every answer the gateway served: what feedback points at.
completions = sa.Table(
    "completions",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("version", sa.String(60), nullable=False),
    sa.Column("messages", sa.JSON, nullable=False),
    sa.Column("output", sa.Text, nullable=False),
    sa.Column("battle_id", sa.String(64), nullable=True, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

battles = sa.Table(
    "battles",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("messages", sa.JSON, nullable=False),
    sa.Column("request_id_a", sa.String(64), nullable=False),
    sa.Column("request_id_b", sa.String(64), nullable=False),
    sa.Column("version_a", sa.String(60), nullable=False),
    sa.Column("version_b", sa.String(60), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

votes = sa.Table(
    "votes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("battle_id", sa.String(64), sa.ForeignKey("battles.id"), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("choice", sa.String(10), nullable=False),  # a | b | tie | both_bad
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("battle_id", "user_id", name="uq_vote_battle_user"),
)

thumbs = sa.Table(
    "thumbs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), sa.ForeignKey("completions.request_id"), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("rating", sa.Integer, nullable=False),  # +1 | -1
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("correction", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

loop_rounds = sa.Table(
    "loop_rounds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("status", sa.String(20), nullable=False),  # running|promoted|kept|failed
    sa.Column("production_version", sa.String(60), nullable=False),
    sa.Column("candidate_version", sa.String(60), nullable=True),
    sa.Column("first_vote_id", sa.Integer, nullable=False),
    sa.Column("last_vote_id", sa.Integer, nullable=False),
    sa.Column("dataset_version_id", sa.Integer, nullable=True),
    sa.Column("job_id", sa.String(40), nullable=True),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)

# --- serve (issue 5): traffic split read by the gateway, written by the loop's rollout -------------
# Append-only history: the newest row is the split in force; older rows explain what happened.
traffic_splits = sa.Table(
    "traffic_splits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("weights", sa.JSON, nullable=False),  # alias or version name -> share (>= 0)
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("actor", sa.String(200), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# API keys (serve, issue 5): only a SHA-256 of each key is stored; `prefix` lets people recognise one.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(20), nullable=False),  # user | annotator | admin
    sa.Column("user_id", sa.String(200), nullable=False),  # the identity requests made with it carry
    sa.Column("rate_limit_per_minute", sa.Integer, nullable=True),  # null: the server's default
    sa.Column("max_tokens", sa.Integer, nullable=True),  # null: the server's default
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

# Server-side multi-turn history (serve, issue 5): one row per session, trimmed on every write.
chat_sessions = sa.Table(
    "chat_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("messages", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

# Edit / regenerate events about a served answer (serve, issue 5); thumbs and votes have their tables.
feedback_events = sa.Table(
    "feedback_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),  # edit | regenerate
    sa.Column("request_id", sa.String(64), sa.ForeignKey("completions.request_id"), nullable=False, index=True),
    sa.Column("version", sa.String(60), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),  # edit: {"text"}; regenerate: {"new_request_id"?}
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# --- models (issue 7): how surgery versions were made, and exports that are not servable versions --
# One row per version made by surgery (merge, average, quantize, prune, distill …): every parent
# (a merge has several) and the exact recipe, so `llmloop models lineage` can show data and configs.
version_lineage = sa.Table(
    "version_lineage",
    metadata,
    sa.Column("version", sa.String(60), primary_key=True),
    sa.Column("operation", sa.String(40), nullable=False),  # merge | merge-lora | average | quantize …
    sa.Column("parents", sa.JSON, nullable=False),  # version names or paths, in recipe order
    sa.Column("recipe", sa.JSON, nullable=False),  # the validated config that made it
    sa.Column("report", sa.JSON, nullable=False),  # what the operation measured (sizes, deltas …)
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Artifacts for other runtimes (GGUF for llama.cpp/Ollama): recorded, but not servable versions.
model_exports = sa.Table(
    "model_exports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.String(60), nullable=False, index=True),
    sa.Column("format", sa.String(20), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# --- loop (issue 8): controller state, decision events, feedback claims, pipelines -----------------
# The controller's one state row (id 1): the round and phase it is in, so a restart resumes there.
loop_controller = sa.Table(
    "loop_controller",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1
    sa.Column("round_id", sa.Integer, nullable=True),  # the round in progress, null when idle
    sa.Column("phase", sa.String(20), nullable=False),  # idle|dataset|train|gate|canary
    sa.Column("stage_index", sa.Integer, nullable=False),  # rollout stage while phase is canary
    sa.Column("phase_started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),  # phase-specific: counter baselines, pending admin command
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Every decision of the loop with its evidence (numbers, CIs, dataset and model versions): append-only.
loop_events = sa.Table(
    "loop_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("round_id", sa.Integer, nullable=True, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Which round consumed each piece of feedback, and what became of it (a training pair, a held-out
# prompt, or dropped with a reason). Unique per feedback item: nothing is used twice.
loop_feedback = sa.Table(
    "loop_feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("round_id", sa.Integer, nullable=False, index=True),
    sa.Column("source", sa.String(20), nullable=False),  # vote | thumb | edit | battle
    sa.Column("source_id", sa.String(64), nullable=False),  # the vote/thumb/event id, or the battle id
    sa.Column("outcome", sa.String(20), nullable=False),  # train | holdout | dropped
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("row_index", sa.Integer, nullable=True),  # the pair's row in the round's dataset version
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("request_ids", sa.JSON, nullable=False),
    sa.Column("versions", sa.JSON, nullable=False),
    sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("source", "source_id", name="uq_loop_feedback_source"),
)

# L3 pipelines: one row per run of a pipeline file, one per step (each step's job and outputs).
pipeline_runs = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False, index=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running|succeeded|failed
    sa.Column("report_path", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)

pipeline_steps = sa.Table(
    "pipeline_steps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("pipeline_runs.id"), nullable=False, index=True),
    sa.Column("step", sa.String(100), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running|succeeded|failed
    sa.Column("job_id", sa.String(40), nullable=True),
    sa.Column("outputs", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("run_id", "step", name="uq_pipeline_step"),
)

# --- train area (issue 4): how each job runs as a process: worker, pid, attempts, cancel requests.
job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("backend", sa.String(20), nullable=False),  # trl | llamafactory
    sa.Column("worker", sa.String(200), nullable=True),  # host:pid of the worker that claimed it
    sa.Column("pid", sa.Integer, nullable=True),  # the job's own process
    sa.Column("attempts", sa.Integer, nullable=False),  # 1 + resumes
    sa.Column("resume", sa.Boolean, nullable=False),  # the next attempt continues from the last checkpoint
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),  # >1: launched through accelerate
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
