"""The model under test: a registered version, an alias, or a checkpoint folder on disk.

``resolve_model(db, ref)`` goes through the one model-reference resolver, ``models.sources.resolve``:
* a version name or alias in the registry (``v1.1``, ``production``) → that version;
* else a folder: with ``adapter_config.json`` (a LoRA checkpoint, e.g. TRL's ``checkpoint-20`` of a
  DPO job) → its base model (``base_model_name_or_path``, which must be a local folder) plus the
  adapter; with ``config.json`` (a full checkpoint or an exported model) → that model.
A folder becomes an unregistered ``ModelVersion`` named after its last two path components
(``run1_checkpoint-20``) with characters a PEFT adapter name cannot hold replaced, so two
checkpoints of different runs do not collide. Hub ids are not taken: the engine serves local weights.
Endpoints need no resolving: their models are just names (see ``eval.endpoint``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from llmloop.eval import EvalInputError
from llmloop.models.sources import Source, resolve, resolve_folder
from llmloop.store.records import ModelVersion


def _as_version(src: Source) -> ModelVersion:
    """An unregistered folder ``Source`` as the ``ModelVersion`` an engine loads."""
    p = Path(src.adapter_path or src.base_model)
    name = re.sub(r"[^A-Za-z0-9_-]", "_", "_".join(p.parts[-2:]))
    now = dt.datetime.now(dt.timezone.utc)
    if src.adapter_path and not Path(src.base_model).is_dir():
        raise EvalInputError(f"checkpoint {p}: its base model {src.base_model!r} is not a local folder; evaluate the "
                             "registered version instead, or merge the adapter first (`llmloop models merge`)")
    return ModelVersion(name, "chat", src.base_model, src.adapter_path, None, None, [], {}, "checkpoint", str(p), now)


def checkpoint_version(path: str | Path) -> ModelVersion:
    """A checkpoint folder as an unregistered ``ModelVersion``; ``ModelRefError`` says what the folder lacks."""
    return _as_version(resolve_folder(str(Path(path).expanduser().resolve())))


def resolve_model(db, ref: str) -> ModelVersion:  # noqa: ANN001 - store.Database
    """Registry first (names and aliases win over same-named folders), then a checkpoint folder."""
    src = resolve(db, ref)
    return src.version if src.version is not None else _as_version(src)
