"""Step 5 of the data path: the verdicts as each audience reads them.

``text`` is the failure text and value column, ``evidence`` the JSON and Markdown files with
``records`` and ``markdown`` behind them. No pytest here; the pytest face lives at the top.
"""
