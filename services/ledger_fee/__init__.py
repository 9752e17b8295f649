"""Kassa ledger and fees.

A double-entry ledger, the fee schedule, charges, payment records, refunds, invoices and
an append-only audit trail.
"""
