"""Kassa's common kit: settings, database, errors, HTTP client, identity, observability.

Nothing domain-specific lives here, and nothing here imports a service.
"""
