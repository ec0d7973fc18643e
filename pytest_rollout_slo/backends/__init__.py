"""Step 3 of the data path: the systems that answer queries.

``base`` holds the Protocol a backend implements and the query and answer types,
``registry`` the backend types by name, ``prometheus`` and ``sqlite`` the built-in ones,
``replay`` records and replays answers, ``redact`` keeps secrets out of every text. No pytest.
"""
