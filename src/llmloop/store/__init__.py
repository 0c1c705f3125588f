"""The only package that talks to the database.

``Database`` opens the engine for a workspace and migrates it to the newest schema; the modules
beside it (``datasets``, ``jobs``, ``registry``, ``feedback``, ``rounds``) hold the queries and return
frozen records, never rows or sessions.
"""

from llmloop.store.db import Database, open_database

__all__ = ["Database", "open_database"]
