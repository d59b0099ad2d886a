"""Review and correct: a person checks specread's least certain answers, and each decision is a label.

``specread review`` (the page is in :mod:`specread.service.review`) runs on these parts, none of
which knows about HTTP:

* :mod:`specread.review.queue`: the rows to review (input rows, the predictions being reviewed
  and their confidence) in the order a person should see them, least confident first;
* :mod:`specread.review.store`: the labels file, one row per decision, written at once and
  crash-safe, in the train.csv columns so that ``specread train REVIEWED.csv`` reads it as it is;
* :mod:`specread.review.answers`: a typed answer checked against the entity's units, and the
  candidates a reader weighed, as numbered choices;
* :mod:`specread.review.session`: the three together, the state the page shows and changes.
"""

from __future__ import annotations

from specread.review.answers import Choice, check_typed, choices
from specread.review.queue import ORDERS, ReviewRow, order_rows, read_review_rows
from specread.review.session import ReviewSession
from specread.review.store import DECISIONS, REVIEW_COLUMNS, Decision, DecisionStore

__all__ = [
    "DECISIONS",
    "ORDERS",
    "REVIEW_COLUMNS",
    "Choice",
    "Decision",
    "DecisionStore",
    "ReviewRow",
    "ReviewSession",
    "check_typed",
    "choices",
    "order_rows",
    "read_review_rows",
]
