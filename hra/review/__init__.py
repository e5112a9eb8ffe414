"""Reviewing a run: explain a building (:mod:`hra.review.explain`), and what the reviewer of a run needs
next to it. This layer sits above the engines and the policy rules and uses both."""
