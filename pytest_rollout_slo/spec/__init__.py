"""Step 1 of the data path: the spec file, read with line numbers, validated, frozen.

``yamlload`` reads YAML keeping lines (``yamlfast`` does the same sooner for plain files),
``reader`` checks the shape of nodes, ``load`` turns a file into the frozen ``model``
(``objectives`` and ``gates`` own their keys), ``settings`` describes backend settings and
``schema`` publishes the JSON Schema. Nothing here runs a query or imports pytest.
"""
