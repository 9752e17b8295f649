"""Kassa facilitator.

x402 payment verification and settlement on Solana (SPL tokens), with durable nonce and
replay protection.
"""
