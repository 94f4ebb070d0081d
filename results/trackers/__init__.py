"""A run folder in the experiment trackers people already use: MLflow (mlflow_log.py) and
TensorBoard (tensorboard_log.py), each read from the run folder's tables, so the same folder
logs the same way live, after a resume, or later.

Imports the rooms below it: the model's files, views, the run folder, what a sweep is.
"""
