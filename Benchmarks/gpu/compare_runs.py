"""GPU against emulator: for each output of a bundle, the largest difference between two runs' outputs
relative to the largest expected value, and how many elements are NaN in one run but not the other.

    python3 compare_runs.py OUT_A OUT_B EXPECTED
"""
import os
import sys

import numpy as np


def load(path):
    a = np.load(path)
    if a.dtype == np.uint16:  # bf16 bit patterns
        return (a.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return a.astype(np.float64)


a_dir, b_dir, want_dir = sys.argv[1:4]
parts = []
for name in sorted(os.listdir(want_dir)):
    try:
        a, b, want = (load(os.path.join(d, name)) for d in (a_dir, b_dir, want_dir))
    except (OSError, ValueError) as e:
        parts.append(f"{name[:-4]}: unreadable ({e.__class__.__name__})")
        continue
    both = np.isfinite(a) & np.isfinite(b)
    scale = float(np.max(np.abs(want[np.isfinite(want)]), initial=0.0))
    diff = float(np.max(np.abs(a[both] - b[both]), initial=0.0))
    nan_differs = int(np.count_nonzero(np.isnan(a) != np.isnan(b)))
    identical = bool(np.array_equal(a, b, equal_nan=True))
    parts.append(
        f"{name[:-4]}: {'bit-identical' if identical else f'max diff {diff / max(scale, 1e-30):.2e} of max|expected|'}"
        + (f", NaN in one only: {nan_differs}" if nan_differs else "")
    )
print("; ".join(parts))
