"""The run folder: what its files hold and how they are read and written: sweep.json's and
model.json's fields checked (schema.py), the folder and its lock (runfolder.py), the tables read
and ranked (table.py) and written while a sweep runs (writer.py).

Imports what a sweep is (results.sweep) and the files' names (results.columns).
"""
