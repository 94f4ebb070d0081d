"""Views of a run, from its files: the rounds of --extend-edges as shown (rounds.py), each
hyperparameter's effect (effects.py), and two runs' tables compared (compare.py).

Imports the run folder (results.folder) and what a sweep is (results.sweep).
"""
