"""The ``llmloop`` command: one file per domain, each a thin adapter over the library."""
