"""Everything that needs no Ray, read from and written to the run folder, in rooms that import
one way: columns.py and errors.py (the files' names, the settings' error: import nothing) <-
sweep/ (what a sweep is) <- folder/ (the run folder's files) <- views/ (views of a run) <- model/
(the model after the sweep) <- run.py (a run from Python, and the post-sweep sequence).

Works from the run folder's files alone: no Ray. Imports only mlp_core of this project.
"""
