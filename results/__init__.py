"""What a user does with a finished sweep: tables, retraining, plots, export and the report.

Works from the run folder's files alone: no Ray.
"""
