"""The methods paragraph of the report, generated from what was actually run.

Facts come first from the results records (sample sizes, bootstrap resamples, imputations,
windows, alpha levels), then from the study configuration (covariates, alpha rule), then
from the manifest (versions, seed, configuration hash). Each method is cited:

- Hayes, A. F. (2022). *Introduction to mediation, moderation, and conditional process
  analysis* (3rd ed.). Guilford Press. — PROCESS Model 4, completely standardized effects.
- Rubin, D. B. (1987). *Multiple imputation for nonresponse in surveys*. Wiley.
- van Buuren, S. (2018). *Flexible imputation of missing data* (2nd ed.). CRC Press.
- Barnard, J., & Rubin, D. B. (1999). Small-sample degrees of freedom with multiple
  imputation. *Biometrika, 86*(4), 948–955.
- Efron, B., & Tibshirani, R. J. (1993). *An introduction to the bootstrap*. Chapman & Hall.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .figures import COVARIATE_LABELS, DEFAULT_COVARIATES
from .tables import OUTCOME_LABELS, fmt_prop, month_label, windows

REFERENCES = {
    "hayes2022": "Hayes, A. F. (2022). Introduction to mediation, moderation, and conditional process analysis: "
                 "A regression-based approach (3rd ed.). Guilford Press.",
    "rubin1987": "Rubin, D. B. (1987). Multiple imputation for nonresponse in surveys. Wiley.",
    "vanbuuren2018": "van Buuren, S. (2018). Flexible imputation of missing data (2nd ed.). CRC Press.",
    "barnard1999": "Barnard, J., & Rubin, D. B. (1999). Small-sample degrees of freedom with multiple imputation. "
                   "Biometrika, 86(4), 948\u2013955.",
    "harel2009": "Harel, O. (2009). The estimation of R\u00b2 and adjusted R\u00b2 in incomplete data sets using "
                 "multiple imputation. Journal of Applied Statistics, 36(10), 1109\u20131118.",
    "li1991": "Li, K. H., Meng, X.-L., Raghunathan, T. E., & Rubin, D. B. (1991). Significance levels from repeated "
              "p-values with multiply-imputed data. Statistica Sinica, 1(1), 65\u201392.",
    "efron1993": "Efron, B., & Tibshirani, R. J. (1993). An introduction to the bootstrap. Chapman & Hall.",
}


@dataclass(frozen=True)
class MethodsText:
    """The generated paragraph and the references it cites (APA 7)."""

    paragraph: str
    references: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"paragraph": self.paragraph, "references": list(self.references)}

    def summary(self) -> str:
        return self.paragraph + "\n\nReferences\n" + "\n".join(self.references)


def config_dict(config: Any, results: dict[str, Any] | None = None) -> dict[str, Any]:
    """The study configuration as a plain dict: a pydantic ``StudyConfig``, a dict, or the manifest's copy."""
    if config is not None:
        if hasattr(config, "model_dump"):
            return config.model_dump(mode="json")
        if isinstance(config, dict):
            return config
    manifest_cfg = ((results or {}).get("manifest") or {}).get("config")
    return manifest_cfg if isinstance(manifest_cfg, dict) else {}


def _get(d: Any, dotted: str, default: Any = None) -> Any:
    for key in dotted.split("."):
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def _join(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + ", and " + items[-1]


def _count(n: int, noun: str) -> str:
    words = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    word = words[n] if 0 <= n < len(words) else str(n)
    return f"{word} {noun}" + ("" if n == 1 else "s")


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(v for v in values if v is not None))


def methods_text(results: dict[str, Any], config: Any = None) -> MethodsText:
    """Write the methods paragraph for ``results`` (and the study ``config``, if given)."""
    cfg = config_dict(config, results)
    recs = results.get("mediation") or []
    manifest = results.get("manifest") or {}
    cited: list[str] = []

    def cite(key: str, text: str) -> str:
        if key not in cited:
            cited.append(key)
        return text

    outcomes = _unique([r.get("outcome_label") or OUTCOME_LABELS.get(r.get("outcome"), r.get("outcome"))
                        for r in recs])
    pairs = _unique([(r.get("outcome_month"), r.get("mediator_month")) for r in recs])
    ws = windows(results)
    covariates = _get(cfg, "analysis.covariates") or (recs[0].get("covariates") if recs else None) \
        or list(DEFAULT_COVARIATES)
    cov_text = _join([COVARIATE_LABELS.get(c, str(c).replace("_", " ")) for c in covariates])
    n_values = [int(r["n"]) for r in recs if r.get("n") is not None]
    n_boot = _unique([r.get("n_boot") for r in recs]) or [_get(cfg, "analysis.n_boot")]
    schemes = _unique([r.get("imputation_scheme") for r in recs])
    m_values = _unique([r.get("imputations") for r in recs])
    pooling = _unique([r.get("pooling") for r in recs])
    conf = _get(cfg, "analysis.conf", 0.95) or 0.95
    rule = _get(cfg, "analysis.alpha_rule") or {}
    base_alpha = rule.get("alpha", 0.05)
    adj_alpha = rule.get("adjusted_alpha", 0.01)
    threshold = rule.get("icc_threshold", 0.05)
    # parallel mediators: alpha of a and b is keyed by mediator
    alphas = sorted({float(u) for r in recs for v in (r.get("alpha") or {}).values()
                     for u in (v.values() if isinstance(v, dict) else [v]) if u is not None})

    sentences = []
    model_text = _join([f"{month_label(o)}-month outcomes with the {month_label(m)}-month working alliance "
                        f"as mediator" for o, m in pairs])
    sentences.append(
        cite("hayes2022", "Simple mediation models (PROCESS Model 4; Hayes, 2022) were estimated by ordinary "
             f"least squares, {len(recs)} in all: {_count(len(outcomes), 'outcome')} ({_join(outcomes)}) for "
             f"{model_text or 'each outcome wave'}."))
    if ws:
        primary = ws[0]
        window_text = (f"The predictor was each client's team SMCM fidelity averaged over the {primary} days before "
                       "the alliance interview, from daily team scores interpolated linearly between fidelity "
                       "assessments")
        if len(ws) > 1:
            window_text += f"; sensitivity analyses repeated every model with {_join([f'{w}-day' for w in ws[1:]])} windows"
        sentences.append(window_text + ".")
    sentences.append(f"Both equations of every model included {_count(len(covariates), 'covariate')}: {cov_text}.")
    if n_values:
        sentences.append(f"Models used n = {min(n_values)}\u2013{max(n_values)} clients."
                         if min(n_values) != max(n_values) else f"Models used n = {n_values[0]} clients.")
    overall = (results.get("missing") or {}).get("overall_share")
    imputed = [s for s in schemes if s and s != "listwise"]
    if imputed:
        m_text = f"m = {_join([str(m) for m in m_values])}" if m_values else "several"
        share = f" ({overall:.1%} of the scale scores)" if overall is not None else ""
        sentences.append(
            cite("vanbuuren2018", f"Missing data{share} were multiply imputed ({m_text}) at the item level by chained "
                 "equations with predictive mean matching (van Buuren, 2018), and scale scores were computed from "
                 "the completed items.")
        )
        sentences.append(
            cite("rubin1987", "Regression coefficients were pooled with Rubin's (1987) rules")
            + cite("barnard1999", ", with the small-sample degrees of freedom of Barnard and Rubin (1999).")
        )
    elif schemes:
        share = f" ({overall:.1%} of scale scores were missing)" if overall is not None else ""
        sentences.append(f"Clients with missing values on a model's variables were excluded listwise{share}.")
    if any(n_boot):
        pool_text = ""
        if imputed and pooling:
            pool_text = {
                "stacked": ", stacking the resamples of all imputed data sets into one distribution",
                "boot_mi": ", bootstrapping the incomplete data and imputing within each resample",
                "rubin_mc": ", with Monte Carlo draws from the Rubin-pooled estimates",
            }.get(pooling[0], f" (pooling: {pooling[0]})")
        sentences.append(
            cite("efron1993", f"Indirect effects (ab) were tested with {conf:.0%} percentile bootstrap confidence "
                 f"intervals from {_join([f'{b:,}' for b in n_boot if b])} resamples (Efron & Tibshirani, 1993)"
                 f"{pool_text}; an indirect effect was deemed significant when its interval excluded zero. "
                 "The completely standardized indirect effect is reported as the effect size (Hayes, 2022).")
        )
    if results.get("icc") or alphas:
        sentences.append(
            "Because clients were nested in case managers within teams, intraclass correlations (ICCs) of each "
            f"dependent variable were estimated; following the original study's rule, alpha was lowered from "
            f"p < {fmt_prop(base_alpha, 2)} to p < {fmt_prop(adj_alpha, 2)} for paths whose dependent variable had "
            f"an ICC > {fmt_prop(threshold, 2)}" + (", and site was a covariate." if "site" in covariates else "."))
    if results.get("hierarchical"):
        text = ("As an exploratory test of a reciprocal relationship, hierarchical regressions entered the "
                "covariates (step 1) and then each earlier outcome (step 2) to predict the later working alliance")
        if any(r.get("imputations") for r in results["hierarchical"]):
            text += cite("harel2009", "; R\u00b2 was pooled as in Harel (2009)") + cite(
                "li1991", " and the R\u00b2 change was tested with the D2 statistic (Li et al., 1991)")
        sentences.append(text + ".")
    version = manifest.get("fidelitymed")
    if version:
        seed = manifest.get("seed")
        chash = str(manifest.get("config_hash") or "")[:12]
        tail = f"; seed {seed}" if seed is not None else ""
        tail += f"; configuration hash {chash}" if chash else ""
        sentences.append(f"Analyses were run with fidelitymed {version} (Python {manifest.get('python', '?')}{tail}).")
    refs = tuple(REFERENCES[k] for k in sorted(cited, key=lambda k: REFERENCES[k].lower()))
    return MethodsText(" ".join(sentences), refs)
