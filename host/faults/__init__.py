"""Fault injection: rules that make the host answer late, twice, garbled or not at all.

``rules``    the rule model, the registry that matches requests, forced answers (pure)
``actions``  carrying a decision out on a live connection (Twisted)
"""
