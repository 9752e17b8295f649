"""Kassa services, one package each."""
