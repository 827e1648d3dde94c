"""The result of PROCESS Model 4: :class:`MediationResult` (immutable), its dict, frame and PROCESS-style text."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._json import json_float

__all__ = ["MediationResult", "BOOT_COLUMNS"]

#: Columns of :attr:`MediationResult.boot_draws` with one mediator (one row per resample).
BOOT_COLUMNS = ("a", "b", "c_prime", "ab", "ab_ps", "ab_std")

_BOOT_COEF_KEYS = ("coef", "boot_mean", "boot_se", "boot_ci_low", "boot_ci_high")
_STAR = "*" * 74


_json_float = json_float


def _json_block(d: dict) -> dict:
    return {k: _json_float(v) for k, v in d.items()}


def _fmt(v) -> str:
    return f"{v:10.4f}" if v is not None and np.isfinite(v) else f"{'.':>10}"


@dataclass(frozen=True, eq=False)  # arrays and frames have no single truth value
class MediationResult:
    """Result of :func:`fidelitymed.mediate` (PROCESS Model 4, one or parallel mediators).  Immutable.

    One mediator: :meth:`to_dict` holds exactly ``n``, ``n_dropped``, ``paths`` (``a``, ``b``,
    ``c_prime``, ``c`` -> coef, se, t, p, ci_low, ci_high), ``models`` (``mediator``, ``outcome``,
    ``total`` -> r, r2, mse, F, df1, df2, p), ``indirect``, ``indirect_partially_std``,
    ``indirect_std`` (-> effect, boot_se, ci_low, ci_high), ``n_boot``, ``n_boot_failed``, ``seed``.

    ``k >= 2`` mediators: ``paths["a"]`` and ``paths["b"]`` are keyed by mediator; ``models`` has
    one entry per mediator plus ``outcome`` and ``total``; each ``indirect*`` block is keyed by
    ``total`` and the mediators; with ``contrast`` a ``contrasts`` block (``"m1 - m2"`` -> ...).
    A dichotomous Y: ``outcome`` and ``total`` are logistic (paths carry ``z`` in place of ``t``;
    models ``neg2ll, model_ll, df, p, mcfadden, cox_snell, nagelkerke``), no standardized
    effects, and ``y_coding``.  Monte Carlo intervals: ``mc_se`` in place of ``boot_se`` and
    ``n_mc``.  Options add ``boot_coefficients``, ``standardized_coefficients``.

    Attributes beyond the dict
    --------------------------
    mediator_models : tuple of OLSResult
        One fit per mediator (``mediator_model`` with one mediator).
    outcome_model, total_model : OLSResult or LogitResult
        Full coefficient vectors and covariance matrices (``.coef``, ``.vcov``, ``.names``).
    boot_draws : pandas.DataFrame or None
        With ``save_boot=True``: one row per resample (or Monte Carlo draw); columns
        :data:`BOOT_COLUMNS` with one mediator (see :func:`.linear.boot_columns`).
    normal_test : dict or None
        With ``normal=True``: ``effect, se, z, p`` of the second-order (Aroian) test (keyed by
        mediator when ``k >= 2``).
    notes : tuple of str
        The "ANALYSIS NOTES" of :meth:`summary`.
    """

    x: str
    mediators: tuple[str, ...]
    y: str
    covariates: tuple[str, ...]
    covariate_names: tuple[str, ...]
    n: int
    n_dropped: int
    conf: float
    ci: str
    cov_type: str
    cluster: str | None
    process_compat: bool
    mediator_models: tuple[Any, ...]
    outcome_model: Any
    total_model: Any
    indirect: dict[str, Any]
    indirect_partially_std: dict[str, Any] | None
    indirect_std: dict[str, Any] | None
    n_boot: int
    n_boot_failed: int
    seed: Any
    seed_is_random: bool
    sd_x: float
    sd_y: float
    normal_test: dict[str, Any] | None = None
    boot_draws: pd.DataFrame | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()
    contrasts: dict[str, dict[str, Any]] | None = None
    contrast: str | None = None
    n_mc: int = 0
    boot_coefficients: dict[str, dict[str, dict[str, float]]] | None = None
    standardized_coefficients: dict[str, dict[str, float]] | None = None
    y_levels: tuple[float, float] | None = None
    x_dichotomous: bool = False
    total_reported: bool = True
    covariates_mediators: tuple[str, ...] = ()
    covariates_outcome: tuple[str, ...] = ()
    path_df: dict[str, Any] | None = None

    # ------------------------------------------------------------------ shape
    @property
    def k(self) -> int:
        return len(self.mediators)

    @property
    def m(self) -> str:
        """The mediator (one), or the mediators joined by ", " (display only)."""
        return self.mediators[0] if self.k == 1 else ", ".join(self.mediators)

    @property
    def mediator_model(self):
        if self.k != 1:
            raise AttributeError("mediator_model exists with one mediator; use mediator_models")
        return self.mediator_models[0]

    @property
    def binary_y(self) -> bool:
        return self.y_levels is not None

    @property
    def _se_key(self) -> str:
        return "mc_se" if self.ci == "monte_carlo" else "boot_se"

    # ------------------------------------------------------------------ paths
    def _path(self, fit, name: str, key: str) -> dict[str, float]:
        d = fit.coef_of(name)
        if self.path_df is not None:
            d["df"] = self.path_df[key]
        return d

    @property
    def paths(self) -> dict[str, Any]:
        """``a``, ``b``, ``c_prime``, ``c``: coef, se, t (z), p, ci_low, ci_high (``a``, ``b`` keyed by mediator if k >= 2)."""
        if self.k == 1:
            a = self._path(self.mediator_models[0], self.x, "a")
            b = self._path(self.outcome_model, self.mediators[0], "b")
        else:
            a = {m: self._path(f, self.x, f"a:{m}") for m, f in zip(self.mediators, self.mediator_models)}
            b = {m: self._path(self.outcome_model, m, f"b:{m}") for m in self.mediators}
        return {"a": a, "b": b, "c_prime": self._path(self.outcome_model, self.x, "c_prime"),
                "c": self._path(self.total_model, self.x, "c")}

    @property
    def models(self) -> dict[str, dict[str, float]]:
        """Model summaries of every equation (r, r2, mse, F, df1, df2, p; logistic: -2LL ... Nagelkerke)."""
        if self.k == 1:
            out = {"mediator": self.mediator_models[0].model_summary()}
        else:
            out = {m: f.model_summary() for m, f in zip(self.mediators, self.mediator_models)}
        out["outcome"] = self.outcome_model.model_summary()
        out["total"] = self.total_model.model_summary()
        return out

    @property
    def ab(self) -> float:
        """The (total) indirect effect ``sum_j a_j b_j``."""
        block = self.indirect if self.k == 1 else self.indirect["total"]
        return float(block["effect"])

    def standardized_direct_total(self) -> dict[str, float]:
        """``c_cs``, ``c_prime_cs`` (effect * SDx / SDy) and ``c_ps``, ``c_prime_ps`` (effect / SDy)."""
        p = self.paths
        return {"c_cs": p["c"]["coef"] * self.sd_x / self.sd_y,
                "c_prime_cs": p["c_prime"]["coef"] * self.sd_x / self.sd_y,
                "c_ps": p["c"]["coef"] / self.sd_y,
                "c_prime_ps": p["c_prime"]["coef"] / self.sd_y}

    # ------------------------------------------------------------------ exports
    def _indirect_blocks(self) -> list[tuple[str, dict]]:
        blocks = [("indirect", self.indirect)]
        if not self.binary_y:
            blocks += [("indirect_partially_std", self.indirect_partially_std), ("indirect_std", self.indirect_std)]
        return blocks

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with exactly the keys listed in the class docstring (NaN -> None)."""
        keys = ("effect", self._se_key, "ci_low", "ci_high")

        def block(d):
            if self.k == 1:
                return {kk: _json_float(d[kk]) for kk in keys}
            return {name: {kk: _json_float(v[kk]) for kk in keys} for name, v in d.items()}

        def path(v):
            return _json_block(v) if "coef" in v else {m: _json_block(vv) for m, vv in v.items()}

        seed = self.seed
        out: dict[str, Any] = {
            "n": int(self.n),
            "n_dropped": int(self.n_dropped),
            "paths": {k: path(v) for k, v in self.paths.items()},
            "models": {k: {kk: (int(vv) if kk in ("df1", "df2", "df") else _json_float(vv)) for kk, vv in v.items()}
                       for k, v in self.models.items()},
        }
        for name, d in self._indirect_blocks():
            out[name] = block(d)
        out.update({"n_boot": int(self.n_boot), "n_boot_failed": int(self.n_boot_failed),
                    "seed": seed if not isinstance(seed, dict) else dict(seed)})
        if self.contrasts is not None:
            out["contrasts"] = {name: {kk: _json_float(v[kk]) for kk in keys} for name, v in self.contrasts.items()}
        if self.ci == "monte_carlo":
            out["n_mc"] = int(self.n_mc)
        if self.boot_coefficients is not None:
            out["boot_coefficients"] = {eq: {name: {kk: _json_float(v[kk]) for kk in _BOOT_COEF_KEYS}
                                             for name, v in coefs.items()}
                                        for eq, coefs in self.boot_coefficients.items()}
        if self.standardized_coefficients is not None:
            out["standardized_coefficients"] = {eq: {name: _json_float(v) for name, v in coefs.items()}
                                                for eq, coefs in self.standardized_coefficients.items()}
        if self.binary_y:
            out["y_coding"] = {"0": _json_float(self.y_levels[0]), "1": _json_float(self.y_levels[1])}
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per effect: the paths and the indirect effects (then the contrasts).

        Columns ``estimate, se, t, p, ci_low, ci_high`` (``t`` holds z for logistic paths); for
        the indirect effects ``se`` is the bootstrap (Monte Carlo) SE and ``t``/``p`` are empty.
        With ``k >= 2`` mediators the rows are named ``a:<m>``, ``b:<m>``, ``indirect:total``, ...
        """
        rows = {}
        for name, d in self.paths.items():
            items = [(name, d)] if "coef" in d else [(f"{name}:{m}", v) for m, v in d.items()]
            for label, v in items:
                rows[label] = [v["coef"], v["se"], v.get("t", v.get("z")), v["p"], v["ci_low"], v["ci_high"]]
        se_key = self._se_key
        for name, d in self._indirect_blocks():
            items = [(name, d)] if self.k == 1 else [(f"{name}:{m}", v) for m, v in d.items()]
            for label, v in items:
                rows[label] = [v["effect"], v[se_key], np.nan, np.nan, v["ci_low"], v["ci_high"]]
        for name, v in (self.contrasts or {}).items():
            rows[f"contrast:{name}"] = [v["effect"], v[se_key], np.nan, np.nan, v["ci_low"], v["ci_high"]]
        frame = pd.DataFrame.from_dict(rows, orient="index", columns=["estimate", "se", "t", "p", "ci_low", "ci_high"])
        frame.index.name = "effect"
        return frame.astype(float)

    # ------------------------------------------------------------------ PROCESS-style text
    def summary(self) -> str:
        """Text laid out like PROCESS's Model 4 output (Hayes 2022, Appendix A), section by section."""
        conf_pct = self.conf * 100
        L: list[str] = [_STAR, "fidelitymed mediate: PROCESS Model 4 (Hayes 2022)", _STAR,
                        "Model  : 4", f"    Y  : {self.y}", f"    X  : {self.x}"]
        if self.k == 1:
            L.append(f"    M  : {self.mediators[0]}")
        else:
            L += [f"   M{j + 1:<2}: {m}" for j, m in enumerate(self.mediators)]
        if self.covariates:
            L += ["", "Covariates:", " " + " ".join(self.covariates)]
        L += ["", "Sample", f"Size:  {self.n}"]
        if self.n_boot or self.n_mc:
            L += ["", f"{'Random' if self.seed_is_random else 'Custom'} seed:  {self.seed}"]
        if self.binary_y:
            L += ["", "Coding of binary Y for logistic regression analysis:",
                  f"{self.y:>10}{'Analysis':>10}", f"{self.y_levels[0]:10.4g}{0:10d}", f"{self.y_levels[1]:10.4g}{1:10d}"]
        std = self.standardized_coefficients or {}
        eq_keys = ["mediator"] if self.k == 1 else list(self.mediators)
        for m, fit, key in zip(self.mediators, self.mediator_models, eq_keys):
            L += ["", _STAR, "OUTCOME VARIABLE:", f" {m}", "", fit.summary()]
            L += self._std_lines(std.get(key))
        L += ["", _STAR, "OUTCOME VARIABLE:", f" {self.y}", "", self.outcome_model.summary()]
        L += self._std_lines(std.get("outcome"))
        if self.total_reported:
            L += ["", "************************** TOTAL EFFECT MODEL ****************************",
                  "OUTCOME VARIABLE:", f" {self.y}", "", self.total_model.summary()]
            L += self._std_lines(std.get("total"))
            L += ["", "************** TOTAL, DIRECT, AND INDIRECT EFFECTS OF X ON Y **************", ""]
        else:
            L += ["", "****************** DIRECT AND INDIRECT EFFECTS OF X ON Y *****************", ""]
        L += self._effect_lines()
        L += self._indirect_lines()
        if self.boot_coefficients is not None:
            L += ["*********** BOOTSTRAP RESULTS FOR REGRESSION MODEL PARAMETERS ************", ""]
            for eq, coefs in self.boot_coefficients.items():
                width = max(12, max(len(n) for n in coefs) + 2)
                name = self.y if eq in ("outcome", "total") else (self.mediators[0] if eq == "mediator" else eq)
                title = "OUTCOME VARIABLE:" if eq != "total" else "TOTAL EFFECT MODEL, OUTCOME VARIABLE:"
                L += [title, f" {name}", "",
                      " " * width + "".join(f"{h:>10}" for h in ("Coeff", "BootMean", "BootSE", "BootLLCI",
                                                                 "BootULCI"))]
                for cname, v in coefs.items():
                    L.append(f"{cname:<{width}}" + "".join(_fmt(v[kk]) for kk in _BOOT_COEF_KEYS))
                L += ["", "-" * 74]
        L += ["*********************** ANALYSIS NOTES AND ERRORS ************************", "",
              "Level of confidence for all confidence intervals in output:", f"  {conf_pct:.4f}", ""]
        if self.ci == "monte_carlo":
            L += ["Number of samples for Monte Carlo confidence intervals:", f"  {self.n_mc}", ""]
        if self.n_boot:
            kind = {"percentile": "percentile bootstrap", "bc": "bias-corrected bootstrap",
                    "bca": "bias-corrected and accelerated bootstrap",
                    "monte_carlo": "percentile bootstrap"}[self.ci]
            L += [f"Number of bootstrap samples for {kind} confidence intervals:", f"  {self.n_boot}", ""]
        for note in self.notes:
            L += [f"NOTE: {note}", ""]
        return "\n".join(L).rstrip() + "\n"

    @staticmethod
    def _std_lines(coefs: dict[str, float] | None) -> list[str]:
        if not coefs:
            return []
        width = max(12, max(len(n) for n in coefs) + 2)
        return ["", "Standardized coefficients", " " * width + f"{'coeff':>10}",
                *(f"{name:<{width}}{_fmt(v)}" for name, v in coefs.items())]

    def _effect_lines(self) -> list[str]:
        stat = "z" if self.binary_y else "t"
        se_label = self.outcome_model.se_label
        with_df = self.path_df is not None
        head = (f"{'Effect':>10}{se_label:>10}{stat:>10}" + (f"{'df':>10}" if with_df else "")
                + f"{'p':>10}{'LLCI':>10}{'ULCI':>10}")
        std = self.standardized_direct_total()
        rows = []
        if self.total_reported:
            rows.append(("Total effect of X on Y:", "c", "c_ps" if self.x_dichotomous else "c_cs"))
        rows.append(("Direct effect of X on Y:", "c_prime", "c_prime_ps" if self.x_dichotomous else "c_prime_cs"))
        out = []
        p = self.paths
        for title, key, std_key in rows:
            d = p[key]
            keys = ["coef", "se", stat] + (["df"] if with_df else []) + ["p", "ci_low", "ci_high"]
            line = "".join(f"{d[kk]:10.4f}" for kk in keys)
            label = std_key.replace("_prime", "'")
            if self.binary_y:
                out += [title, head, line, ""]
            else:
                out += [title, head + f"{label:>10}", line + f"{std[std_key]:10.4f}", ""]
        return out

    def _indirect_lines(self) -> list[str]:
        mc = self.ci == "monte_carlo"
        se_key = self._se_key
        labels = ("MC SE", "MC LLCI", "MC ULCI") if mc else ("BootSE", "BootLLCI", "BootULCI")
        names = list(self.mediators) + (["TOTAL"] if self.k > 1 else [])
        contrast_names = list(self.contrasts or {})
        row_labels = ["TOTAL", *self.mediators] if self.k > 1 else list(self.mediators)
        row_labels += [f"(C{j + 1})" for j in range(len(contrast_names))]
        width = max(12, max(len(n) for n in names + row_labels) + 2)
        head = " " * width + f"{'Effect':>10}" + "".join(f"{h:>10}" for h in labels)
        blocks = [("Indirect effect(s) of X on Y:", self.indirect, True)]
        if not self.binary_y:
            if self.x_dichotomous:
                blocks.append(("Partially standardized indirect effect(s) of X on Y:", self.indirect_partially_std,
                               False))
            else:
                blocks += [("Partially standardized indirect effect(s) of X on Y:", self.indirect_partially_std,
                            False),
                           ("Completely standardized indirect effect(s) of X on Y:", self.indirect_std, False)]
        out = []
        for title, d, with_contrasts in blocks:
            out += [title, head]
            items = [(self.mediators[0], d)] if self.k == 1 else [("TOTAL", d["total"])] + \
                [(m, d[m]) for m in self.mediators]
            for label, v in items:
                out.append(f"{label:<{width}}" + "".join(_fmt(v[kk]) for kk in ("effect", se_key, "ci_low",
                                                                                   "ci_high")))
            if with_contrasts and self.contrasts:
                for j, v in enumerate(self.contrasts.values()):
                    out.append(f"{f'(C{j + 1})':<{width}}" + "".join(_fmt(v[kk]) for kk in ("effect", se_key,
                                                                                           "ci_low", "ci_high")))
            out.append("")
        if self.contrasts:
            out.append("Specific indirect effect contrast definition(s):")
            for j, name in enumerate(contrast_names):
                a, b = name.split(" - ")
                out.append(f"{f'(C{j + 1})':<8}{a:>12}{'minus':>8}{b:>12}")
            if self.contrast == "absolute":
                out.append("Contrasts are differences between absolute values of indirect effects")
            out.append("")
        if self.normal_test is not None:
            # one mediator: PROCESS prints the single row without a label
            pad = 0 if self.k == 1 else width
            out += ["Normal theory test for indirect effect(s):", " " * pad + f"{'Effect':>10}{'se':>10}{'Z':>10}{'p':>10}"]
            tests = [("", self.normal_test)] if self.k == 1 else list(self.normal_test.items())
            for label, nt in tests:
                out.append(f"{label:<{pad}}" + "".join(f"{nt[kk]:10.4f}" for kk in ("effect", "se", "z", "p")))
            out.append("")
        return out

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        kind = f"{self.n_mc} Monte Carlo draws" if self.ci == "monte_carlo" else f"{self.n_boot} resamples"
        caption = (f"PROCESS Model 4: X = {html.escape(self.x)}, M = {html.escape(self.m)}, "
                   f"Y = {html.escape(self.y)}; n = {self.n}, {kind}, "
                   f"{self.conf * 100:g}% {self.ci} CI")
        table = self.to_frame().to_html(float_format=lambda v: f"{v:.4f}", na_rep="")
        return f"<div><p><b>{caption}</b></p>{table}</div>"
