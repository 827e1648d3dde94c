"""Write mice_pool_data.csv: 5 fixed "completed" data sets (n = 60) that mice_pool.R pools.

The data sets share the observed values and differ in 12 "imputed" rows of m and y, so the
between-imputation variance is clearly non-zero and the small n makes the Barnard-Rubin df
differ from the large-sample df. Run once: python tests/reference/mice_pool_data.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(20241126)
n, m_imp = 60, 5
x = rng.normal(size=n)
w = rng.integers(0, 2, n).astype(float)
med = 0.5 * x + 0.3 * w + rng.normal(size=n)
y = 0.4 * med + 0.2 * x + rng.normal(size=n)
imputed = rng.choice(n, 12, replace=False)
frames = []
for k in range(1, m_imp + 1):
    mk, yk = med.copy(), y.copy()
    mk[imputed] = 0.5 * x[imputed] + rng.normal(size=12)
    yk[imputed[:8]] = 0.4 * mk[imputed[:8]] + rng.normal(size=8)
    frames.append(pd.DataFrame({".imp": k, "x": x, "w": w, "m": mk, "y": yk}))
out = pd.concat(frames, ignore_index=True).round(6)
out.to_csv(Path(__file__).with_name("mice_pool_data.csv"), index=False)
