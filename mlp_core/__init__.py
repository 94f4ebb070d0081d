"""Pure-NumPy core: MNIST-style data, the 784-H-10 MLP and its SGD training loop.

Imports nothing from search/ or results/, nor Ray, pandas or matplotlib.
"""
