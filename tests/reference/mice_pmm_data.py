"""Writes tests/reference/mice_pmm_data.csv: an incomplete data set (MAR y, MCAR x2) that
tests/reference/mice_pmm.R imputes with R mice (PMM) and tests/test_impute_vs_mice.py with ours.

Run from the repository root: python tests/reference/mice_pmm_data.py
"""

import numpy as np
import pandas as pd

rng = np.random.default_rng(20261126)
n = 400
x1 = rng.standard_normal(n)
x2 = 0.5 * x1 + rng.standard_normal(n)
y = 1.0 + 0.5 * x1 + 0.3 * x2 + rng.standard_normal(n)
# y missing at random given x1 (about 30%), x2 missing completely at random (about 20%)
y[rng.random(n) < 1 / (1 + np.exp(-(x1 - 1.0)))] = np.nan
x2[rng.random(n) < 0.2] = np.nan
pd.DataFrame({"y": y, "x1": x1, "x2": x2}).round(6).to_csv("tests/reference/mice_pmm_data.csv", index=False)
