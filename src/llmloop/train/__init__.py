"""Training: one recipe per stage (pt, sft, dpo [orpo, simpo], kto, rm, grpo; ppo through
LLaMA-Factory), each run a durable job in a process of its own.

Public API: ``llmloop.train.config`` (one config per stage, ``load_config``), ``llmloop.train.jobs``
(``run_training`` → ``TrainResult``, in-process), ``llmloop.train.worker`` (``submit``, ``work``,
``cancel``, ``resume``: jobs as processes), ``llmloop.train.llamafactory`` (export, backend),
``llmloop.train.rewards`` (GRPO reward functions), ``llmloop.train.speed`` (the GPU fast path).
The recipes go through TRL, PEFT, transformers and accelerate; nothing here hand-writes a training loop.
"""
