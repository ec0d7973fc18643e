"""Step 2 of the data path: which queries the items need, and running them ahead.

``needs`` lists the queries of one objective at one stage, ``executor`` runs them
concurrently under the run's deadline and shares each answer, ``xdist`` splits the plan
across workers. No pytest here.
"""
