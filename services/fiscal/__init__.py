"""Kassa fiscal.

Kenya Revenue Authority eTIMS fiscalisation through OSCU and VSCU: devices, items,
invoices, credit notes, receipts.
"""
