"""Model building, the registry's library API, and model surgery."""
