"""The model registry as the rest of llmloop uses it: versions, their lineage and exports, aliases.

Versions are immutable (``v1.0``, ``v1.1`` … chat, ``c1.0`` … completion); aliases (``production``,
``candidate``, ``canary``, your own) point at them and every move is audited. The queries live in
``store.registry``; this module is the registry's public face above the store, so the CLI and
scripts never import the store. Registering a folder made elsewhere is
``models.sources.register_folder``.
"""

from __future__ import annotations

from llmloop.store.records import ModelVersion
from llmloop.store.registry import (
    Lineage,
    VersionNotFound,
    alias_history,
    archive,
    get,
    get_lineage,
    list_exports,
    list_versions,
    remove_alias,
    resolve_alias,
    set_alias,
)

__all__ = ["Lineage", "ModelVersion", "VersionNotFound", "alias_history", "archive", "get", "get_lineage",
           "list_exports", "list_versions", "remove_alias", "resolve_alias", "set_alias"]
