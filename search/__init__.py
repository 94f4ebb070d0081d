"""The Ray side: a sweep run with Ray Tune (the trainable, the schedulers, the callbacks that keep
the run folder's tables), the cluster checks, and the Python API (api.py).

The only package that imports Ray (through ray_api.py); writes the run folder through results/.
"""
