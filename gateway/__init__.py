"""Kassa's gateway: API keys, routing to the services, the signed caller identity."""
