"""One config per training stage: YAML → pydantic model → recipe.

Each field's ``description`` is its CLI help. The three stage configs share their fields through
``_Common`` (data only, no behaviour) and differ in their defaults, which follow the seeds' best
practice (T14): continued pre-training uses a low learning rate and a larger LoRA rank, SFT a
higher rate over several epochs, DPO a rate ten times lower than SFT with ``beta`` 0.1.

``STAGE_TABLE`` is the one list of stages: each row names its config class, its recipe, the dataset
kind it trains on, the kind of model it gives and its CLI help; ``STAGES``, ``CONFIGS``, the job
runner's recipes and kinds, the ``llmloop train <stage>`` commands, the REST API and the UI's stage
menu are all read from it.

``load_config`` is the one preset loader (the CLI, the API, the loop and pipelines use it): it reads
a YAML file, lays ``values`` (a mapping, e.g. a loop policy's ``train.config``) over it, applies
``key=value`` overrides (``lora.r=16`` reaches into a block) and validates the result once, so the
file and the overrides pass the same checks. Every problem is reported at once, each naming the
file, the key, the value seen and the fix.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmloop.errors import UserError

SchedulerName = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "cosine_with_min_lr",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "warmup_stable_decay",
]
# TRL's DPO losses (trl/trainer/dpo_config.py `loss_type`).
DPOLoss = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
]


class TrainingInputError(UserError, ValueError):
    """The run cannot start because of what it was given (model, dataset, names): a user error."""


class ConfigError(UserError, ValueError):
    """A config that cannot run; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        head = f"{source}: {len(problems)} problem{'s' if len(problems) > 1 else ''} in the config"
        super().__init__("\n".join([head, *(f"  - {p}" for p in problems)]))


class LoraSettings(BaseModel):
    """LoRA adapter shape. Ignored for ``finetuning: full`` and when continuing an existing adapter
    (its own shape is kept)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1, description="LoRA rank: width of the low-rank update")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator; the update is scaled by alpha/r")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input")
    target_modules: str | list[str] = Field(
        "all-linear",
        description="Modules to adapt: 'all-linear' (every linear layer but the output head) "
        "or a list of module names such as [q_proj, v_proj]",
    )


class SpeedSettings(BaseModel):
    """How the run uses a GPU. Every ``null`` means "decide for this machine" (see train/speed.py):
    on a CPU all of it is off; on a GPU the fast path is on."""

    model_config = ConfigDict(extra="forbid")

    attention: Literal["auto", "sdpa", "eager", "llmloop_varlen", "flash_attention_2"] = Field(
        "auto",
        description="Attention kernel: 'auto' = PyTorch's FlashAttention-2 varlen kernel (llmloop_varlen) for "
        "padding-free runs on a GPU, SDPA otherwise; 'flash_attention_2' needs the flash-attn package",
    )
    padding_free: bool | None = Field(
        None,
        description="Pack examples into full-length rows and train them as one flattened sequence with "
        "position ids (no padding, no cross-example attention); pt and sft, and dpo's padded pairs unpadded "
        "under the LM head (method dpo); null = on when a varlen "
        "attention kernel is available (GPU)",
    )
    liger_kernel: bool | None = Field(
        None, description="Liger's fused RMSNorm/SwiGLU/RoPE kernels; null = on in a job's own process when liger-kernel "
        "is installed and a GPU is present (Liger patches transformers' classes process-wide, so in-process "
        "run_training leaves it off)"
    )
    group_by_length: bool | None = Field(
        None,
        description="Batch examples of similar length together (transformers' LengthGroupedSampler) so padded "
        "stages (dpo, kto, rm) compute less padding; null = on with a GPU for those stages",
    )
    auto_find_batch_size: bool | None = Field(
        None,
        description="Start at per_device_train_batch_size and halve it on CUDA out-of-memory (transformers' "
        "auto_find_batch_size); null = on with a GPU",
    )
    lora_input_cast: bool | None = Field(
        None,
        description="PEFT's cast of every LoRA layer's input to the adapter's dtype (fp32). Under GPU autocast it "
        "only adds two activation copies per LoRA layer (the matmul casts back to bf16): the same forward pass "
        "and, at lora.dropout 0, bit-identical adapter gradients, at less speed (docs/benchmarks.md); null = off, "
        "except for grpo (TRL generates outside autocast, where the uncast input is a dtype error); true = PEFT's "
        "default cast",
    )


class EvalSettings(BaseModel):
    """Evaluation during training (T13): a held-out split, evaluated every N steps, early stopping."""

    model_config = ConfigDict(extra="forbid")

    split: float = Field(
        0.0, ge=0.0, lt=1.0, description="Fraction of the dataset held out for evaluation (0 = no evaluation)"
    )
    dataset: str | None = Field(
        None, description="Evaluate on this dataset (name or name@version) instead of a split of the training data"
    )
    steps: int = Field(50, ge=1, description="Evaluate (and checkpoint) every N optimizer steps")
    metric: str = Field(
        "eval_loss", description="Metric that picks the best checkpoint and drives early stopping, e.g. eval_loss, "
        "eval_rewards/accuracies (DPO), eval_accuracy (rm)"
    )
    greater_is_better: bool | None = Field(
        None, description="Whether a higher metric is better; null = false for *loss metrics, true otherwise"
    )
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many evaluations without improvement (transformers' "
        "EarlyStoppingCallback); null = never stop early"
    )
    early_stopping_threshold: float = Field(0.0, ge=0.0, description="Smallest change that counts as an improvement")
    load_best: bool = Field(
        True, description="Save the best checkpoint's weights as the run's output (not the last step's)"
    )

    @property
    def enabled(self) -> bool:
        return self.split > 0 or self.dataset is not None


class LlamaFactorySettings(BaseModel):
    """What LLaMA-Factory needs beyond our own settings (T9)."""

    model_config = ConfigDict(extra="forbid")

    cli: str | None = Field(
        None, description="llamafactory-cli executable for --backend llamafactory; null = $LLMLOOP_LLAMAFACTORY_CLI, "
        "then llamafactory-cli on PATH"
    )
    template: str = Field(
        "default", description="LLaMA-Factory chat template name (qwen, llama3, chatml, default …)"
    )


class RegisterSettings(BaseModel):
    """Whether and how the trained model enters the model registry."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Register the trained model as a new model version (stage 'candidate')")
    name: str | None = Field(
        None,
        description="Version name; by default the next free one: v1.0, v1.1 … for chat models "
        "(sft, dpo), c1.0, c1.1 … for completion models (pt)",
    )
    note: str = Field("", description="Free text stored with the version")


class _Common(BaseModel):
    """Fields every stage has. Pure data: the recipes read them, nothing here runs."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    model: str = Field(
        ...,
        description="Where training starts: a model directory, a Hugging Face hub id, or a registered "
        "model version or alias (v1.0, production). A version with an adapter is continued: its "
        "adapter is copied and trained further",
    )
    dataset: str = Field(
        ..., description="Training data: a dataset name (its latest version) or name@version, e.g. faq@v1.2"
    )
    tokenizer: str | None = Field(
        None, description="Tokenizer directory or hub id; null = the starting model's own tokenizer"
    )
    finetuning: Literal["lora", "qlora", "full"] = Field(
        "lora",
        description="'lora' trains a small adapter on the frozen model; 'qlora' the same on a 4/8-bit quantised "
        "model (bitsandbytes, CUDA GPU only); 'full' trains every weight",
    )
    qlora_bits: Literal[4, 8] = Field(4, description="Quantisation of the frozen model for finetuning: qlora (NF4 or 8-bit)")
    adapter_start: Literal["continue", "merge"] = Field(
        "continue",
        description="When the starting version has a LoRA adapter and finetuning is lora: 'continue' trains that "
        "adapter further (stacked); 'merge' merges it into the base and trains a new adapter (lora.* shape) on "
        "top, the merged base saved with the job",
    )
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA adapter shape")
    learning_rate: float = Field(5e-5, gt=0, description="Peak learning rate (AdamW)")
    num_train_epochs: float = Field(3.0, gt=0, description="Passes over the dataset (ignored when max_steps > 0)")
    max_steps: int = Field(-1, ge=-1, description="Stop after this many optimizer steps; -1 trains for num_train_epochs")
    per_device_train_batch_size: int = Field(4, ge=1, description="Examples per device per forward pass")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Forward passes per optimizer step (effective batch = batch size x this x devices)"
    )
    max_length: int = Field(1024, ge=8, description="Longest tokenized example; longer ones are truncated")
    seed: int = Field(42, description="Seed for data order, dropout and new adapter weights")
    logging_steps: int = Field(10, ge=1, description="Record loss, learning rate and gradient norm every N steps")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of the steps spent warming the learning rate up from 0")
    lr_scheduler_type: SchedulerName = Field("cosine", description="Learning-rate schedule after warm-up")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, about 20% slower"
    )
    save_strategy: Literal["no", "steps", "epoch"] = Field(
        "no", description="Keep intermediate checkpoints: 'no' (only the final model), every save_steps, or every epoch"
    )
    save_steps: int = Field(500, ge=1, description="Checkpoint interval when save_strategy is 'steps'")
    evaluation: EvalSettings = Field(default_factory=EvalSettings, alias="eval",
                                     description="Evaluation during training and early stopping")
    save_total_limit: int | None = Field(
        2, ge=1, description="Keep at most this many checkpoints (the best one is always kept); null = all"
    )
    llamafactory: LlamaFactorySettings = Field(
        default_factory=lambda: LlamaFactorySettings(),
        description="LLaMA-Factory interop: export (train export-llamafactory) and --backend llamafactory",
    )
    accelerate_config: str | None = Field(
        None,
        description="accelerate config file used when the job runs on several GPUs (--gpus N): "
        "configs/accelerate/ddp.yaml, zero2.yaml or zero3.yaml; null = accelerate's defaults (DDP)",
    )
    speed: SpeedSettings = Field(default_factory=SpeedSettings, description="GPU speed settings")
    plot_loss: bool = Field(True, description="Write training_loss.png next to the job log (needs matplotlib)")
    # `register` is the YAML key; the attribute has another name because pydantic's BaseModel
    # already has a `register` (from ABCMeta).
    registration: RegisterSettings = Field(
        default_factory=RegisterSettings,
        alias="register",
        description="Registering the trained model as a model version",
    )

    @field_validator("model", "dataset")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be a positive number of steps, or -1 to train for num_train_epochs")
        return value


class PTConfig(_Common):
    """Continued pre-training (stage pt) on ``{"text"}`` rows: gives a completion model."""

    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate (AdamW); low, so the model keeps what it knew")
    num_train_epochs: float = Field(1.0, gt=0, description="Passes over the corpus (ignored when max_steps > 0)")
    lora: LoraSettings = Field(
        default_factory=lambda: LoraSettings(r=16, alpha=32), description="LoRA adapter shape"
    )
    packing: bool = Field(
        True,
        description="Concatenate the documents and cut them into max_length blocks (no padding, no text "
        "dropped); false pads each document and truncates it at max_length",
    )


class SFTConfig(_Common):
    """Supervised fine-tuning (stage sft) on ``{"messages"}`` rows: gives a chat model."""

    assistant_only_loss: bool = Field(
        True, description="Learn only the assistant turns (needs {% generation %} markers in the chat template)"
    )


class DPOConfig(_Common):
    """Direct preference optimisation (stage dpo) on prompt/chosen/rejected rows.

    The reference model is the frozen starting model (base plus its adapter, if it has one)."""

    learning_rate: float = Field(5e-6, gt=0, description="Peak learning rate (AdamW); about a tenth of SFT's")
    num_train_epochs: float = Field(1.0, gt=0, description="Passes over the preference pairs (ignored when max_steps > 0)")
    beta: float = Field(0.1, gt=0, description="How far the model may move from the reference; higher stays closer")
    loss_type: DPOLoss = Field("sigmoid", description="DPO loss: 'sigmoid' is the original DPO; 'ipo', 'hinge', … are variants")
    method: Literal["dpo", "simpo"] = Field(
        "dpo",
        description="'dpo' (TRL DPOTrainer, loss_type applies); 'simpo' (length-normalised, reference-free, TRL "
        "experimental CPOTrainer with loss_type=simpo). ORPO is a stage of its own: `llmloop train orpo`",
    )
    simpo_gamma: float = Field(0.5, ge=0.0, description="SimPO's target reward margin (method simpo only)")
    ref_model: str | None = Field(
        None,
        description="Reference model (a version, alias, directory or hub id); null = the starting model: "
        "the adapter-disabled model for a new adapter, or the starting version (base + its adapter) when "
        "its adapter is continued",
    )
    precompute_ref_log_probs: bool | None = Field(
        None,
        description="Score every pair with the reference model once before training instead of at every step; "
        "pays off from the second epoch on; null = on with a GPU when num_train_epochs > 1",
    )
    sft_weight: float = Field(
        0.0,
        ge=0.0,
        description="Add TRL's 'sft' loss (negative log-likelihood of the chosen answers) with this weight, "
        "as RPO does: keeps the model fluent while it moves towards the preferred answers; 0 = plain DPO",
    )

    @field_validator("method", "loss_type", mode="before")
    @classmethod
    def _no_orpo(cls, value: Any) -> Any:
        # One way to ORPO: its own stage, with its own defaults (lr 8e-6, beta = lambda) and recipe.
        if value == "orpo":
            raise ValueError("ORPO is a stage of its own, not a DPO method: run `llmloop train orpo` "
                             "(presets in configs/orpo/; the loop's train.stage: orpo)")
        return value


class ORPOConfig(_Common):
    """ORPO (stage orpo, T7; recipe in train/orpo.py) on prompt/chosen/rejected rows: the SFT loss on the
    chosen answer plus an odds-ratio penalty on the rejected one, with no reference model."""

    learning_rate: float = Field(8e-6, gt=0, description="Peak learning rate (AdamW); the ORPO paper's 8e-6")
    num_train_epochs: float = Field(1.0, gt=0, description="Passes over the preference pairs (ignored when max_steps > 0)")
    beta: float = Field(0.1, gt=0, description="ORPO's lambda: weight of the odds-ratio term against the SFT loss (paper: 0.1)")


class KTOConfig(_Common):
    """KTO (stage kto, T7) on unpaired prompt/completion/label rows (thumbs up = true, down = false).

    The reference model is the frozen starting model, as for DPO."""

    learning_rate: float = Field(5e-6, gt=0, description="Peak learning rate (AdamW); DPO-like, a tenth of SFT's")
    num_train_epochs: float = Field(1.0, gt=0, description="Passes over the rows (ignored when max_steps > 0)")
    beta: float = Field(0.1, gt=0, description="How far the model may move from the reference; higher stays closer")
    desirable_weight: float = Field(
        1.0, gt=0, description="Weight of the desirable (label true) examples; raise it when they are the fewer"
    )
    undesirable_weight: float = Field(1.0, gt=0, description="Weight of the undesirable (label false) examples")
    ref_model: str | None = Field(
        None, description="Reference model (version, alias, directory or hub id); null = the starting model"
    )


class RMConfig(_Common):
    """Reward model (stage rm, T4): a sequence-classification head trained with the pairwise
    (Bradley-Terry) loss on prompt/chosen/rejected rows. The output scores answers; it is not a chat
    model, so it is not registered as a model version (the job records its path)."""

    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate (AdamW)")
    num_train_epochs: float = Field(1.0, gt=0, description="Passes over the pairs (ignored when max_steps > 0)")
    center_rewards_coefficient: float | None = Field(
        None, ge=0, description="Push the mean reward towards 0 with this weight (TRL); null = off"
    )


class GRPOConfig(_Common):
    """GRPO (stage grpo, T6) on prompt rows (``{"prompt": [...], "solution"?: str}``): the model samples
    ``num_generations`` answers per prompt, reward functions score them, answers better than their
    group's mean are reinforced."""

    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate (AdamW); RL needs small steps")
    num_train_epochs: float = Field(1.0, gt=0, description="Passes over the prompts (ignored when max_steps > 0)")
    per_device_train_batch_size: int = Field(
        8, ge=1, description="Completions per device per step; a multiple of num_generations / devices"
    )
    num_generations: int = Field(8, ge=2, description="Answers sampled per prompt (the group)")
    max_completion_length: int = Field(256, ge=1, description="Longest sampled answer, in tokens")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the answers")
    beta: float = Field(
        0.04, ge=0, description="KL penalty towards the reference (0 = none and no reference model, as TRL's default)"
    )
    rewards: list[str] = Field(
        default_factory=lambda: ["answer_match", "format"],
        description="Reward functions: built-in answer_match (numbers extracted and compared with the row's "
        "solution), format (final answer marked as 'Answer: …' or \\boxed{…}), length (close to "
        "target_length), or a user function as module:function (TRL's reward-function signature)",
    )
    reward_weights: list[float] | None = Field(
        None, description="One weight per reward function; null = all 1"
    )
    target_length: int = Field(200, ge=1, description="Characters the length reward aims for")

    @field_validator("rewards")
    @classmethod
    def _rewards(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one reward function")
        from llmloop.train.rewards import BUILTIN

        bad = [r for r in value if r not in BUILTIN and ":" not in r]
        if bad:
            raise ValueError(f"unknown reward function {bad[0]!r}: use one of {', '.join(BUILTIN)} or module:function")
        return value


class PPOConfig(_Common):
    """PPO (stage ppo, T5). TRL 1.16 no longer ships a PPO trainer (removed upstream; GRPO/RLOO replace it),
    so this stage runs only with ``--backend llamafactory`` (LLaMA-Factory's ppo stage, which needs a
    reward model from ``llmloop train rm``)."""

    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate (AdamW)")
    num_train_epochs: float = Field(1.0, gt=0, description="Passes over the prompts (ignored when max_steps > 0)")
    reward_model: str | None = Field(
        None, description="Reward model directory (the output of `llmloop train rm`); required"
    )
    max_new_tokens: int = Field(256, ge=1, description="Longest sampled answer, in tokens")


StageConfig = PTConfig | SFTConfig | DPOConfig | ORPOConfig | KTOConfig | RMConfig | GRPOConfig | PPOConfig


# -- the stages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One training stage: what it reads, how it trains, what it gives."""

    name: str  # `llmloop train <name>`, the job's stage, the folder of its presets (configs/<name>/)
    config: type[_Common]
    recipe: str  # "module:function" of the recipe, imported when a job runs it (recipes import TRL)
    dataset_kind: str  # the rows it trains on (a dataset version's kind)
    model_kind: str | None  # what it registers: "chat", "completion"; None = not a generator (rm's scorer)
    help: str  # the CLI command's help line

    def recipe_function(self) -> Callable[..., Any]:
        module, _, function = self.recipe.partition(":")
        return getattr(importlib.import_module(module), function)


STAGE_TABLE: tuple[Stage, ...] = (
    Stage("pt", PTConfig, "llmloop.train.pt:run", "pt", "completion",
          'Continued pre-training on {"text"} rows: gives a completion model (c1.0, c1.1 …).'),
    Stage("sft", SFTConfig, "llmloop.train.sft:run", "sft", "chat",
          'Supervised fine-tuning on {"messages"} rows: gives a chat model (v1.0 …).'),
    Stage("dpo", DPOConfig, "llmloop.train.dpo:run", "preference", "chat",
          "DPO (or SimPO: --set method=simpo) on prompt/chosen/rejected rows: the next chat version."),
    Stage("orpo", ORPOConfig, "llmloop.train.orpo:run", "preference", "chat",
          "ORPO on prompt/chosen/rejected rows (SFT loss + odds-ratio penalty, no reference model): the next chat version."),
    Stage("kto", KTOConfig, "llmloop.train.kto:run", "kto", "chat",
          "KTO on unpaired prompt/completion/label rows (thumbs up/down): the next chat version."),
    Stage("rm", RMConfig, "llmloop.train.rm:run", "preference", None,
          "Reward model on prompt/chosen/rejected rows (pairwise loss): a scorer, recorded with the job."),
    Stage("grpo", GRPOConfig, "llmloop.train.grpo:run", "prompt", "chat",
          "GRPO on prompt rows with reward functions (answer match, format, length, or yours)."),
    Stage("ppo", PPOConfig, "llmloop.train.ppo:run", "prompt", "chat",
          "PPO against a reward model: only with --backend llamafactory (TRL 1.16 has no PPO trainer)."),
)
STAGE_BY_NAME: dict[str, Stage] = {s.name: s for s in STAGE_TABLE}
STAGES: tuple[str, ...] = tuple(STAGE_BY_NAME)
CONFIGS: dict[str, type[_Common]] = {s.name: s.config for s in STAGE_TABLE}


def config_class(stage: str) -> type[_Common]:
    try:
        return CONFIGS[stage]
    except KeyError:
        raise TrainingInputError(f"unknown training stage {stage!r}; use one of {', '.join(STAGES)}") from None


# -- loading -------------------------------------------------------------------------------------


def load_config(stage: str, path: str | Path | None = None, overrides: Iterable[str] | None = (), *,
                values: Mapping[str, Any] | None = None, values_from: str = "values") -> StageConfig:
    """The one preset loader: read ``path`` (a YAML preset, configs/<stage>/), lay ``values`` over its
    top-level keys (a loop policy's ``train.config``, a pipeline step's ``config``, the model and
    dataset a round trains on), apply ``overrides`` (``key=value``, ``block.key=value``), validate.

    Raises ``ConfigError`` listing every problem found; a problem in ``values`` names ``values_from``.
    """
    cls = config_class(stage)
    source = str(path) if path is not None else ("command line" if values is None else values_from)
    data = _read_yaml(Path(path)) if path is not None else {}
    origin: dict[str, str] = {}
    for key, value in (values or {}).items():
        data[key] = value
        origin[key] = values_from
    problems: list[str] = []
    for item in overrides or ():
        try:
            key = _apply_override(data, item)
        except ValueError as e:
            problems.append(str(e))
            continue
        origin[key] = "--set"
    try:
        config = cls.model_validate(data)
    except ValidationError as e:
        problems.extend(_describe(err, cls, origin) for err in e.errors())
    if problems:
        raise ConfigError(source, problems)
    return config  # type: ignore[return-value]


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(str(path), ["no such file; name an existing YAML preset (-c on the command line; see configs/<stage>/)"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(str(path), [f"{where}not valid YAML ({problem}); fix the syntax there"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"the file must hold a mapping of key: value, got a {type(data).__name__}"])
    return data


def _apply_override(data: dict[str, Any], item: str) -> str:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"--set {item!r}: expected key=value, e.g. --set learning_rate=1e-4")
    # YAML typing, so `--set max_steps=5` is an int and `--set lora.target_modules=[q_proj]` a list.
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(f"--set {item!r}: {part!r} is not a block of settings, so {key!r} cannot be set")
        node = child
    node[parts[-1]] = value
    return key


def _describe(err: dict[str, Any], cls: type[BaseModel], origins: dict[str, str]) -> str:
    """One pydantic error → 'key: what is wrong (got …); fix'."""
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc)
    where = origins.get(key) or origins.get(loc[0] if loc else "")
    origin = f" (from {where})" if where else ""
    if err["type"] == "extra_forbidden":
        known = _known_keys(cls, loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys here: {', '.join(sorted(known))}"
        return f"{key}{origin}: unknown key; {hint}"
    if err["type"] == "missing":
        return f"{key}: required but missing; add `{key}: …` to the file or pass --set {key}=…"
    got = err.get("input")
    msg = err["msg"].removeprefix("Value error, ")
    return f"{key}{origin}: {msg} (got {got!r}); fix {key} in the file or pass --set {key}=…"


def _known_keys(cls: type[BaseModel], path: list[str]) -> list[str]:
    model: Any = cls
    for part in path:
        fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
        field = next((f for n, f in fields.items() if (f.alias or n) == part), None)
        if field is None:
            return []
        model = field.annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []
