"""Refund scenario language, runner, pytest plugin and bundled library."""
