"""The web UI (Gradio) over the gateway's HTTP API: ``build_ui`` (``ui/blocks.py``) and ``mount``
(``ui/mount.py``: the UI on a FastAPI app)."""
