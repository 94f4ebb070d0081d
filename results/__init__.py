"""The run folder: what a sweep is (its declared settings, the grid, early stopping's rungs and
record), the files it writes and how they read back, and what a user does with a finished
sweep: tables, retraining, plots, export and the report.

Works from the run folder's files alone: no Ray. Imports only mlp_core of this project.
"""
