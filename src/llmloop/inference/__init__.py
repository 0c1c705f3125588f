"""Inference engines, below every package that generates text.

``base`` holds the protocol (``Engine``, ``SamplingParams``, ``Generation``, ``StreamResult``,
``UnknownVersion``); ``embedded`` runs transformers + peft in this process (``continuous`` is its
GPU continuous-batching path); ``upstream`` talks to an OpenAI-compatible server and ``vllm``
launches one; ``echo`` answers without a model (the gateway's overhead benchmark). The gateway
(``llmloop.serve``), evaluation, the loop and model scans import engines from here.
"""
