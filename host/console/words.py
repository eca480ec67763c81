"""The host's vocabulary as the console shows it, in the language in use.

The host names things with fixed English words on the wire and in its tables (``sale``,
``merchant_payable:<mid>``, ``pending_review``); the console shows those words through the
shared catalogue (:mod:`protocol.i18n`). In English they read as they are sent; a word the
catalogue does not know is shown as it came.
"""

from __future__ import annotations

from protocol.i18n import _, pgettext


def kind_word(word: str) -> str:
    """What a message or a posting group does (``sale``, ``void refund``, ``settlement`` ...)."""
    words = {  # context "kind": the terminal's catalogue has "reversal" as a plural noun
        "sale": pgettext("kind", "sale"), "refund": pgettext("kind", "refund"),
        "void": pgettext("kind", "void"), "void refund": pgettext("kind", "void refund"),
        "reversal": pgettext("kind", "reversal"), "network": pgettext("kind", "network"),
        "reconcile": pgettext("kind", "reconcile"), "upload": pgettext("kind", "upload"),
        "auth": pgettext("kind", "auth"), "completion": pgettext("kind", "completion"),
        "financial": pgettext("kind", "financial"), "message": pgettext("kind", "message"),
        "settlement": pgettext("kind", "settlement"),
        "review_release": pgettext("kind", "review_release"),
        "review_rejected": pgettext("kind", "review_rejected"),
        "hold_release": pgettext("kind", "hold_release"), "posting": pgettext("kind", "posting"),
    }  # fmt: skip
    return words.get(word, word)


def account_name(account: str) -> str:
    """A ledger account's name, ``merchant_payable:<mid>`` keeping its merchant id."""
    base, colon, owner = account.partition(":")
    names = {
        "merchant_payable": _("merchant_payable"), "scheme_settlement": _("scheme_settlement"),
        "refunds_under_review": _("refunds_under_review"),
        "acquirer_fee_income": _("acquirer_fee_income"), "pending_holds": _("pending_holds"),
        "merchant_holds": _("merchant_holds"), "bank": _("bank"),
    }  # fmt: skip
    return names.get(base, base) + colon + owner


def review_state(state: str) -> str:
    """A review's state (``pending_review``, ``approved``, ``rejected``, ``cancelled``)."""
    states = {
        "pending_review": pgettext("review", "pending_review"),
        "approved": pgettext("review", "approved"), "rejected": pgettext("review", "rejected"),
        "cancelled": pgettext("review", "cancelled"),
    }  # fmt: skip
    return states.get(state, state)


def fee_policy_word(policy: str) -> str:
    """The merchant's refund fee policy in words (``keep_mdr``, ``refund_mdr_prorata``,
    ``per_refund_fee``)."""
    policies = {
        "keep_mdr": _("MDR kept"), "refund_mdr_prorata": _("MDR returned pro rata"),
        "per_refund_fee": _("per-refund fee"),
    }  # fmt: skip
    return policies.get(policy, policy)
