"""Benchmarks of the sweep tool. Run each as a module from the repository root, e.g.
`python -m benchmarks.bench_scale`; BENCHMARKS.md gives each command and its measurements.
Shared helpers: common.py (the small real dataset, the repository's root), flops.py (the FLOP
count), gemm.py (this machine's GEMM rate), localcluster.py and procs.py (a multi-node Ray
cluster on this machine, and its processes: the tests use these two as well)."""
