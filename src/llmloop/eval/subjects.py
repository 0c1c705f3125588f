"""The model under test: a registered version, an alias, or a checkpoint folder on disk.

``resolve_model(db, ref)``:
* a version name or alias in the registry (``v1.1``, ``production``) → that version;
* else a folder: with ``adapter_config.json`` (a LoRA checkpoint, e.g. TRL's ``checkpoint-20`` of a
  DPO job) → its base model (``base_model_name_or_path``, which must be a local folder) plus the
  adapter; with ``config.json`` (a full checkpoint or an exported model) → that model.
A folder is named after its last two path components (``run1_checkpoint-20``) with characters a
PEFT adapter name cannot hold replaced, so two checkpoints of different runs do not collide.
Endpoints need no resolving: their models are just names (see ``eval.endpoint``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from llmloop.eval import EvalInputError
from llmloop.store.records import ModelVersion


def checkpoint_version(path: str | Path) -> ModelVersion:
    """A checkpoint folder as an unregistered ``ModelVersion``; ValueError says what the folder lacks."""
    p = Path(path).expanduser().resolve()
    if not p.is_dir():
        raise EvalInputError(f"model {str(path)!r}: not a registered version or alias, and not a folder "
                         "(see `llmloop models list`, or pass a checkpoint folder)")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", "_".join(p.parts[-2:]))
    now = dt.datetime.now(dt.timezone.utc)
    if (p / "adapter_config.json").exists():
        try:
            base = json.loads((p / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
        except (ValueError, KeyError) as e:
            raise EvalInputError(f"checkpoint {p}: adapter_config.json has no base_model_name_or_path ({e})") from None
        if not base or not Path(base).is_dir():
            raise EvalInputError(f"checkpoint {p}: its base model {base!r} is not a local folder; evaluate the "
                             "registered version instead, or merge the adapter first (`llmloop models merge`)")
        return ModelVersion(name, "chat", str(base), str(p), None, None, [], {}, "checkpoint", str(p), now)
    if (p / "config.json").exists():
        return ModelVersion(name, "chat", str(p), None, None, None, [], {}, "checkpoint", str(p), now)
    raise EvalInputError(f"checkpoint {p}: neither adapter_config.json (LoRA) nor config.json (full model) is in it")


def resolve_model(db, ref: str) -> ModelVersion:  # noqa: ANN001 - store.Database
    """Registry first (names and aliases win over same-named folders), then a checkpoint folder."""
    from llmloop.store import registry

    try:
        return registry.get(db, ref)
    except registry.VersionNotFound:
        if not Path(ref).expanduser().exists():
            raise
    return checkpoint_version(ref)
