"""Fault injection: rules that make the host answer late, twice, garbled or not at all.

``rules``     the rule model, the registry that matches requests, forced answers (pure)
``actions``   matching a request and processing it, or not, as its rule says (Twisted)
``delivery``  the decision, and carrying out its delivery part where the answer is written
              (the one-process server or a front process)
"""
