"""Step 4 of the data path: judging the answers against the objective.

``instant`` judges the values of one instant against bounds, ``gates`` the judgements beyond
it (sustained, baseline, burn rate, quantile), ``objective`` reads one objective's answers and
picks the judge. No pytest, no I/O.
"""
