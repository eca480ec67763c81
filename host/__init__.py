"""Acquirer host emulator: ISO 8583 server, refund rules, double-entry ledger, admin API."""
