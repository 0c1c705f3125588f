"""Datasets: canonical row schemas, formats in and out, validation, versions."""
