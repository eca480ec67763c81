"""The commented template ``poslab-scenarios new NAME`` writes: every key, with what it does."""

from __future__ import annotations

import re

TEMPLATE = '''\
# A poslab refund scenario. Run it:  poslab-scenarios run THIS_FILE
# Every key is documented in docs/scenarios.md. Amounts are quoted decimal strings in major
# units ("100.00"); response codes are DE39 values ("00", "13"); rules are DE44 rule ids.
name: "@NAME@"
description: one line saying what this scenario teaches
tags: [refund]

# Optional. Fixed simulated clock start (the host's clock, moved only by `advance` steps).
clock: {start: "2026-11-27T09:00:00+08:00"}

# Optional. Host config overrides, merged over the shipped default config (same keys as the
# host's TOML: refund.window_days, refund.review_amount_minor, settlement.funding_days, ...).
# A key ending in "+" appends to a list, e.g. `merchants+: [...]`.
host:
  refund: {window_days: 30}

# Optional. Variables, used as ${name} anywhere below.
vars:
  card: "4111111111111111"       # a PAN or a deck card name such as "Visa approve"

# Optional. One scenario per case; a case's keys become variables.
# cases:
#   - {id: small, amount: "1.00"}
#   - {id: large, amount: "99.00"}

steps:
  - sale: {card: "${card}", amount: "100.00"}
    id: s1                        # later steps refer to this sale as `original: s1`
    expect: {response: "00"}      # the default expectation when `expect` is left out
  - refund: {original: s1, amount: "60.00", reason: return}
    expect: {response: "00"}
  - refund: {original: s1, amount: "50.00", reason: return}
    expect: {response: "13", rule: REFUND_EXCEEDS_REMAINING, remaining: "40.00"}
  - check: {transaction: s1, refunded: "60.00", remaining: "40.00"}
  - check: {ledger: verified}
'''


def render_template(name: str) -> str:
    """The template with the scenario's name filled in."""
    return TEMPLATE.replace("@NAME@", name.replace('"', "'"))


def slug(name: str) -> str:
    """A file name for a scenario name: lower case, words joined by underscores."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "scenario"
