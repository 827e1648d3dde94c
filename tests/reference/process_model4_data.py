"""Makes tests/reference/process_model4.csv (run from the repository root; numpy only, seeded).

The bundled example's complete cases (tests/reference/mediation_lm.csv) plus two columns written
here: ``hope``, a second mediator (depends on fidelity and, weakly, on alliance, so the two
mediators' residuals correlate), and ``employed``, a 0/1 outcome from a logistic model in
fidelity, alliance and hope.  tests/reference/process_model4.R fits the references on this file.
"""

import numpy as np
import pandas as pd

cols = ["fidelity", "alliance", "qol", "age", "ace", "site"]
data = pd.read_csv("tests/reference/mediation_lm.csv").dropna(subset=cols).reset_index(drop=True)
rng = np.random.default_rng(20261202)
n = len(data)
z = (data["alliance"] - data["alliance"].mean()) / data["alliance"].std()
data["hope"] = np.round(2.0 + 0.08 * data["fidelity"] + 0.3 * z + rng.normal(0, 1.0, n), 3)
eta = -4.0 + 0.04 * data["fidelity"] + 0.04 * data["alliance"] + 0.3 * data["hope"]
data["employed"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
data[["client", *cols, "hope", "employed"]].to_csv("tests/reference/process_model4.csv", index=False)
