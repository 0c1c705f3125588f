"""The workspace's database for the layers above the store (the CLI, the demo, scripts).

Open it here and pass it to the library's functions; only ``store/`` holds queries. The workspace is
``home`` if given, else ``$LLMLOOP_HOME``, else ``./.llmloop``; its database is SQLite inside it or
``$LLMLOOP_DATABASE_URL``, migrated to the newest schema on open.
"""

from __future__ import annotations

import os

from llmloop.store import Database, open_database
from llmloop.workspace import Workspace, get_workspace

__all__ = ["Database", "open_workspace_database"]


def open_workspace_database(workspace: Workspace | str | os.PathLike[str] | None = None) -> Database:
    """The migrated database of ``workspace`` (a ``Workspace`` or its home folder; default: the current one)."""
    if workspace is not None and not isinstance(workspace, Workspace):
        workspace = get_workspace(workspace)
    return open_database(workspace)
