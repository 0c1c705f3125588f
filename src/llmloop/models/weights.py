"""Reading and writing HF safetensors checkpoints one tensor at a time.

The contract: nothing here ever holds a whole model. ``WeightReader`` reads shapes from the shard
headers (``safetensors.safe_open``) and hands out one tensor at a time, mapping its shard only for
that read. ``ShardWriter`` plans shard boundaries from shapes and dtypes alone, keeps at
most one shard in memory, writes ``model-0000k-of-0000n.safetensors`` + the index HF expects. So
the peak memory of a merge is about one output shard plus the input tensors of one name.

``staged_dir`` is how every surgery writes its output: into a hidden sibling directory, renamed
onto the destination only when complete — an interrupted run leaves no half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmloop.errors import UserError

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Everything beside the weights that a loader needs: config, tokenizer (+ chat template), generation.
SIDE_FILES = (
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt",
    "tokenizer.model", "added_tokens.json", "llmloop_tiny.json",
)
DEFAULT_SHARD_BYTES = 2 * 2**30

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
                "F8_E4M3": 1, "F8_E5M2": 1}


class WeightsError(UserError, ValueError):
    pass


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str  # safetensors spelling: F32, BF16 …

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * _DTYPE_BYTES.get(self.dtype, 4)


def weight_files(model_dir: str | Path) -> list[Path]:
    """The safetensors shards of a full model (index order) or of an adapter."""
    d = Path(model_dir)
    if not d.is_dir():
        raise WeightsError(f"{d}: not a directory; give the folder of an HF model (config.json + *.safetensors)")
    index = d / INDEX_NAME
    if index.exists():
        names = dict.fromkeys(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        return [d / n for n in names]
    for single in (WEIGHTS_NAME, ADAPTER_WEIGHTS):
        if (d / single).exists():
            return [d / single]
    if list(d.glob("*.bin")) or list(d.glob("*.pt")):
        raise WeightsError(f"{d}: holds pickle weights (*.bin); re-save it with save_pretrained(safe_serialization=True)")
    raise WeightsError(f"{d}: no {WEIGHTS_NAME}, {INDEX_NAME} or {ADAPTER_WEIGHTS}; is this a model folder?")


class WeightReader:
    """Tensors of one checkpoint by name, read lazily from memory-mapped shards."""

    def __init__(self, model_dir: str | Path) -> None:
        from safetensors import safe_open

        self.dir = Path(model_dir)
        self._where: dict[str, str] = {}
        self.infos: dict[str, TensorInfo] = {}
        self.metadata: dict[str, str] = {}
        for f in weight_files(self.dir):
            with safe_open(str(f), framework="pt") as h:
                self.metadata.update(h.metadata() or {})
                for name in h.keys():
                    sl = h.get_slice(name)
                    self._where[name] = str(f)
                    self.infos[name] = TensorInfo(name, tuple(sl.get_shape()), sl.get_dtype())

    def names(self) -> list[str]:
        return list(self.infos)

    def get(self, name: str):  # -> torch.Tensor
        """A copy of one tensor. The shard is mapped only for the read: pages of the input files
        never pile up in this process's resident memory, whatever the model size."""
        from safetensors import safe_open

        with safe_open(self._where[name], framework="pt") as h:
            return h.get_tensor(name)

    def get_rows(self, name: str, start: int, end: int):  # -> torch.Tensor
        """Rows ``start:end`` of a tensor (first dimension), read without reading the rest."""
        from safetensors import safe_open

        with safe_open(self._where[name], framework="pt") as h:
            return h.get_slice(name)[start:end]

    def total_bytes(self) -> int:
        return sum(i.nbytes for i in self.infos.values())


def plan_shards(infos: Iterable[TensorInfo], max_shard_bytes: int) -> list[list[str]]:
    """Greedy split in the given order; a tensor bigger than the limit gets a shard of its own."""
    shards: list[list[str]] = [[]]
    size = 0
    for info in infos:
        if shards[-1] and size + info.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(info.name)
        size += info.nbytes
    return shards


class ShardWriter:
    """Write tensors in a pre-planned order; each shard is flushed to disk as soon as it is full."""

    def __init__(self, out_dir: Path, infos: list[TensorInfo], max_shard_bytes: int = DEFAULT_SHARD_BYTES,
                 metadata: dict[str, str] | None = None) -> None:
        self.out = Path(out_dir)
        self.plan = plan_shards(infos, max_shard_bytes)
        self.metadata = {"format": "pt", **(metadata or {})}
        n = len(self.plan)
        self.files = [WEIGHTS_NAME] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        self._shard_of = {name: i for i, names in enumerate(self.plan) for name in names}
        self._pending: dict[int, dict[str, Any]] = {}
        self._written: set[int] = set()
        self.total_bytes = 0

    def add(self, name: str, tensor: Any) -> None:
        from safetensors.torch import save_file

        i = self._shard_of[name]
        buf = self._pending.setdefault(i, {})
        buf[name] = tensor.contiguous()
        if len(buf) == len(self.plan[i]):
            save_file(buf, str(self.out / self.files[i]), metadata=self.metadata)
            self.total_bytes += sum(t.numel() * t.element_size() for t in buf.values())
            self._written.add(i)
            del self._pending[i]

    def finish(self) -> list[Path]:
        missing = [n for i, names in enumerate(self.plan) if i not in self._written for n in names
                   if n not in self._pending.get(i, {})]
        if missing:
            raise WeightsError(f"shard writer: {len(missing)} planned tensors never written, e.g. {missing[:3]}")
        if len(self.files) > 1:
            index = {"metadata": {"total_size": self.total_bytes},
                     "weight_map": {n: self.files[self._shard_of[n]] for names in self.plan for n in names}}
            (self.out / INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True), encoding="utf-8")
        return [self.out / f for f in self.files]


def copy_side_files(src: str | Path, dst: str | Path, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Config, tokenizer, chat template, generation config: everything but the weights."""
    copied = []
    for name in SIDE_FILES:
        if name in skip:
            continue
        f = Path(src) / name
        if f.exists():
            shutil.copy2(f, Path(dst) / name)
            copied.append(name)
    return copied


def read_config(model_dir: str | Path) -> dict[str, Any]:
    f = Path(model_dir) / "config.json"
    if not f.exists():
        raise WeightsError(f"{model_dir}: no config.json; is this an HF model folder?")
    return json.loads(f.read_text(encoding="utf-8"))


def dir_bytes(path: str | Path) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


@contextmanager
def staged_dir(dest: str | Path) -> Iterator[Path]:
    """Yield an empty hidden sibling of ``dest``; on success rename it to ``dest``, on any error
    (Ctrl-C included) delete it. ``dest`` must not exist: outputs are never overwritten."""
    dest = Path(dest)
    if dest.exists():
        raise WeightsError(f"{dest} exists already; choose another --out (outputs are never overwritten)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.incoming-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():  # durable before it becomes visible
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
