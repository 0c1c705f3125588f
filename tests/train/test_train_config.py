"""Stage configs: every shipped YAML validates, overrides pass the same checks, errors are gathered."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmloop.train.config import CONFIGS, ConfigError, DPOConfig, PTConfig, SFTConfig, load_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
SHIPPED = sorted(p for stage in CONFIGS for p in (CONFIG_DIR / stage).glob("*.yaml"))


def test_configs_are_shipped_for_every_stage():
    assert {p.parent.name for p in SHIPPED} == set(CONFIGS)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_validates_and_names_its_command(path: Path):
    stage = path.parent.name
    config = load_config(stage, path)
    assert isinstance(config, CONFIGS[stage])
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# llmloop train {stage} -c configs/{stage}/{path.name}"


def test_every_field_is_described():
    for cls in CONFIGS.values():
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no description (it is the CLI help)"
            sub = getattr(field.annotation, "model_fields", {})
            assert all(f.description for f in sub.values()), f"{cls.__name__}.{name}.* lacks a description"


def test_stage_defaults_follow_the_seeds_presets():
    assert PTConfig(model="m", dataset="d").learning_rate == 1e-5
    assert PTConfig(model="m", dataset="d").lora.r == 16
    assert SFTConfig(model="m", dataset="d").learning_rate == 5e-5
    dpo = DPOConfig(model="m", dataset="d")
    assert (dpo.learning_rate, dpo.beta, dpo.loss_type, dpo.num_train_epochs) == (5e-6, 0.1, "sigmoid", 1.0)


def test_overrides_are_typed_and_reach_into_blocks(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("model: v1.0\ndataset: prefs\nlora:\n  r: 4\n")
    config = load_config("dpo", path, ["lora.r=32", "max_steps=5", "learning_rate=1e-4", "register.name=v9.0",
                                       "lora.target_modules=[q_proj, v_proj]", "register.enabled=false"])
    assert (config.lora.r, config.max_steps, config.learning_rate) == (32, 5, 1e-4)
    assert config.lora.target_modules == ["q_proj", "v_proj"]
    assert config.registration.name == "v9.0" and config.registration.enabled is False
    assert config.model_dump(by_alias=True)["register"]["name"] == "v9.0"
    only_cli = load_config("sft", None, ["model=./m", "dataset=faq"])
    assert (only_cli.model, only_cli.dataset) == ("./m", "faq")


def test_every_problem_is_reported_at_once_with_file_key_and_fix(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: v1.0\nlearning_rat: 0.1\nmax_steps: lots\nlora:\n  rank: 8\nbeta: -1\n")
    with pytest.raises(ConfigError) as info:
        load_config("dpo", path, ["per_device_train_batch_size=0", "nonsense"])
    message = str(info.value)
    assert message.startswith(f"{path}: 7 problems")
    assert "learning_rat: unknown key; did you mean 'learning_rate'?" in message
    assert "lora.rank: unknown key; known keys here: alpha, dropout, r, target_modules" in message
    assert "max_steps: Input should be a valid integer" in message and "'lots'" in message
    assert "beta: Input should be greater than 0 (got -1)" in message
    assert "per_device_train_batch_size (from --set): Input should be greater than or equal to 1" in message
    assert "dataset: required but missing" in message
    assert "--set 'nonsense': expected key=value" in message
    assert len(info.value.problems) == 7
    with pytest.raises(ConfigError, match=r"max_steps \(from --set\): must be a positive number of steps, or -1"):
        load_config("sft", None, ["model=m", "dataset=d", "max_steps=0"])


def test_unreadable_files_are_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config("sft", tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: v1.0\ndataset: [faq\n")
    with pytest.raises(ConfigError, match=r"(?s)broken.yaml: 1 problem.*line 3, column 1: not valid YAML"):
        load_config("sft", broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- model\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config("sft", listed)
    with pytest.raises(ValueError, match="unknown training stage 'simpo'"):
        load_config("simpo", None, [])  # a method of stage dpo (--set method=simpo), not a stage


ACCELERATE = sorted((CONFIG_DIR / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_shipped_accelerate_configs_load_in_accelerate(path: Path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.mixed_precision == "bf16"
    assert path.read_text(encoding="utf-8").splitlines()[0].startswith("# llmloop train ")
    stage = {"ddp.yaml": None, "zero2.yaml": 2, "zero3.yaml": 3}[path.name]
    assert (config.deepspeed_config or {}).get("zero_stage") == stage


def test_several_gpus_launch_through_accelerate(tmp_path: Path):
    from llmloop.store.records import Job
    from llmloop.train.worker import job_command

    job = Job(id="sft-x", stage="sft", status="running", config={}, output_dir="", log_path="", error=None,
              result=None, created_at=None, started_at=None, finished_at=None)  # type: ignore[arg-type]
    assert job_command(job, 1)[1:] == ["-m", "llmloop.train.worker", "run", "sft-x"]
    cmd = job_command(job, 4, str(CONFIG_DIR / "accelerate" / "zero2.yaml"))
    assert cmd[1:6] == ["-m", "accelerate.commands.launch", "--num_processes", "4", "--config_file"]
    assert cmd[-4:] == ["-m", "llmloop.train.worker", "run", "sft-x"]
    # One GPU with an accelerate config (ZeRO-3 offload on a single GPU) also goes through accelerate.
    one = job_command(job, 1, str(CONFIG_DIR / "accelerate" / "zero3.yaml"))
    assert one[1:5] == ["-m", "accelerate.commands.launch", "--num_processes", "1"]
    assert one[5:7] == ["--config_file", str(CONFIG_DIR / "accelerate" / "zero3.yaml")]


def test_lora_input_cast_is_off_unless_turned_on_and_applied_to_every_lora_layer(tiny_model_dir):
    """PEFT's fp32 cast of LoRA inputs: off unless a config turns it on (on by default only for GRPO,
    whose completions TRL generates outside autocast), and applied to every LoRA layer either way."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from llmloop.train.recipe_base import StartingModel, load_policy
    from llmloop.train.config import SFTConfig, SpeedSettings, TrainingInputError
    from llmloop.train.speed import plan

    assert plan(SpeedSettings(), "sft", cuda=False).lora_input_cast is False
    assert plan(SpeedSettings(), "sft", cuda=True).lora_input_cast is False
    assert plan(SpeedSettings(), "dpo", cuda=True).lora_input_cast is False
    assert plan(SpeedSettings(lora_input_cast=True), "dpo", cuda=True).lora_input_cast is True
    assert plan(SpeedSettings(), "grpo", cuda=True).lora_input_cast is True
    with pytest.raises(TrainingInputError, match="lora_input_cast"):
        plan(SpeedSettings(lora_input_cast=False), "grpo", cuda=True)
    start = StartingModel(str(tiny_model_dir), str(tiny_model_dir))
    for cast in (True, False):
        config = SFTConfig(model=str(tiny_model_dir), dataset="x", speed={"lora_input_cast": cast})
        model = load_policy(start, config, plan(config.speed, "sft", cuda=False))
        layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
        assert layers and {m.cast_input_dtype_enabled for m in layers} == {cast}


def test_lora_input_cast_changes_no_gradient_under_bf16_autocast(tiny_model_dir, monkeypatch):
    """A bf16 base with fp32 adapters under bf16 autocast (the GPU recipe, here on the CPU): with LoRA
    dropout 0, the loss and every adapter gradient are bit for bit the same with and without PEFT's
    input cast, which only copies the input to fp32 before autocast copies it back."""
    import torch

    from llmloop.train import recipe_base
    from llmloop.train.recipe_base import StartingModel, load_policy
    from llmloop.train.config import SFTConfig
    from llmloop.train.speed import plan

    monkeypatch.setattr(recipe_base, "_dtype", lambda config: torch.bfloat16)
    start = StartingModel(str(tiny_model_dir), str(tiny_model_dir))

    def loss_and_grads(cast: bool):
        config = SFTConfig(model=str(tiny_model_dir), dataset="x", lora={"dropout": 0.0},
                           speed={"lora_input_cast": cast})
        model = load_policy(start, config, plan(config.speed, "sft", cuda=False))
        model.train()
        for name, p in model.named_parameters():  # lora_B starts at zero: give lora_A a gradient too
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.02, generator=torch.Generator().manual_seed(len(name)))
        seen = set()  # the dtypes entering the adapters' A matrices: fp32 only with the cast
        for name, module in model.named_modules():
            if name.endswith("lora_A.default"):
                module.register_forward_pre_hook(lambda m, args: seen.add(args[0].dtype))
        ids = torch.arange(3, 67).unsqueeze(0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        assert seen == {torch.float32 if cast else torch.bfloat16}
        assert {p.dtype for n, p in model.named_parameters() if "lora_" in n} == {torch.float32}
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss_on, on = loss_and_grads(True)
    loss_off, off = loss_and_grads(False)
    assert loss_on == loss_off
    assert on.keys() == off.keys() and any("lora_A" in k for k in on)
    assert all(on[k].norm() > 0 for k in on)
    assert all(torch.equal(on[k], off[k]) for k in on), [k for k in on if not torch.equal(on[k], off[k])]


def test_cpu_fused_lm_head_scores_only_labelled_positions(tiny_model_dir, monkeypatch):
    """TRL's fused LM head scores every position on a CPU unless llmloop compacts it: the same loss
    and log-probs, from the labelled positions only."""
    import torch
    import trl.trainer.utils as trl_utils
    from transformers import AutoModelForCausalLM

    from llmloop.train.config import SpeedSettings
    from llmloop.train.speed import plan

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    torch.manual_seed(0)
    ids = torch.randint(10, 200, (2, 12))
    labels = ids.clone()
    labels[:, :8] = -100  # a prompt: after the shift, 2 x 11 positions of which 2 x 4 have a label
    scored: list[int] = []
    real = trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden, *rest):  # noqa: ANN001, ANN205
            scored.append(hidden.shape[0])
            return real.apply(hidden, *rest)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    monkeypatch.setattr(trl_utils, "_use_triton", lambda device: False)  # TRL's own choice on a CPU
    with torch.no_grad():
        full = model(input_ids=ids, labels=labels, fused_lm_head=True)
    plan(SpeedSettings(), "sft", cuda=False)  # every recipe plans first: the CPU compaction is applied
    assert trl_utils._use_triton(torch.device("cpu")) is True
    with torch.no_grad():
        compact = model(input_ids=ids, labels=labels, fused_lm_head=True)
    assert scored == [22, 8]  # every position, then only the labelled ones
    assert torch.allclose(full.loss, compact.loss)
    assert torch.allclose(full.log_probs, compact.log_probs)
