"""``llmloop demo``: the whole loop on a tiny model on CPU, with simulated users."""
