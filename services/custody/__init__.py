"""Kassa custody.

The TrovoTech client (wallets, token mints, payouts, telemetry on the Bantu chain) and
TrovoTech's signed webhooks.
"""
