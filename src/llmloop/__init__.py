"""llmloop: build a domain LLM offline, serve it, learn from its users, ship the next version."""

__version__ = "0.1.0"
