"""The FLOP count every efficiency figure in BENCHMARKS.md uses: the matrix products training
needs per training image, epoch and hidden unit (there is no gradient with respect to the input),
and the forward pass alone for validation.

Leaves out timing. No imports.
"""
FLOPS_PER_IMAGE_PER_H = 2 * (784 + 10) + 2 * 10 + 2 * 10 + 2 * 784  # 3196
VAL_FLOPS_PER_IMAGE_PER_H = 2 * (784 + 10)  # the forward pass alone


def validation_per_training_flop(n_train: float, n_val: float) -> float:
    """The FLOPs of an epoch's validation pass per training FLOP of that epoch (0.124 for
    48,000 / 12,000; image counts or fractions): work every epoch does that the efficiency
    does not count."""
    return n_val * VAL_FLOPS_PER_IMAGE_PER_H / (n_train * FLOPS_PER_IMAGE_PER_H)
