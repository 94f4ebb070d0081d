"""Benchmarks of the sweep tool. Run each as a module from the repository root, e.g.
`python -m benchmarks.bench_scale`; BENCHMARKS.md gives each command and its measurements.
Shared helpers: common.py (the small real dataset, the repository's root), flops.py (the FLOP
count), gemm.py (this machine's GEMM rate); a multi-node Ray cluster on this machine is
search/localcluster.py, which the tests use as well."""
