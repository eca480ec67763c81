"""Settlement: what happens to booked money after the request path.

``cutoffs``        business dates, cut-offs, funding and refund posting dates (pure)
``calendar``       business days per scheme calendar (pure)
``fees``           the MDR and per-refund fee schedule (pure)
``jobs``           the settlement desk: cut-off jobs, funding, refund posting, on a clock
``book``           the desk on the host's database (batches and refunds from the store)
``notifications``  the outbox of merchant notifications and its webhook sender
"""
