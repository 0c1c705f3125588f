"""Training: one recipe per stage (pt, sft, dpo [simpo], orpo, kto, rm, grpo; ppo through
LLaMA-Factory), each run a durable job.

Public API: ``llmloop.train.config`` (one config per stage, ``STAGE_TABLE``, ``load_config``: the one
preset loader), ``llmloop.train.job_runner`` (``submit``: the one job path; ``run_submitted`` /
``run_training`` → ``TrainResult``, in-process; ``failed_on_input``), ``llmloop.train.worker``
(``run_here``, ``work``, ``cancel``, ``resume``: jobs as processes), ``llmloop.train.llamafactory``
(export, backend), ``llmloop.train.rewards`` (GRPO reward functions), ``llmloop.train.speed`` (the GPU
fast path). The recipes go through TRL, PEFT, transformers and accelerate; nothing here hand-writes a
training loop.
"""
