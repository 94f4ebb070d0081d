"""What a sweep is: every setting declared once (settings.py), a sweep's settings checked
(spec.py), the grid and the rungs parsed (space.py), early stopping's decisions and record
(halving.py), and the rounds that follow the grid's edge (edges.py).

Imports only the run folder's names (results.columns) and errors of this package.
"""
