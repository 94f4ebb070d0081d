"""Ray Tune orchestration of the sweep: search space, trainable, callbacks and the tuner.

The only package that imports Ray.
"""
