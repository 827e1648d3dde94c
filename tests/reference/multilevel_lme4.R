# Reference lme4/lmerTest fits for tests/test_multilevel.py.
# Run from the repository root:  Rscript tests/reference/multilevel_lme4.R
# Data: tests/reference/multilevel_study.csv and multilevel_boundary.csv (made by multilevel_data.py).
# Fits use nloptwrap/BOBYQA with tolerances far below lme4's defaults (xtol_abs = ftol_abs = 1e-8
# stop ~1e-8 short of the optimum in the criterion, ~1e-5 in the SEs); the criterion reached with
# the default settings is kept as default_deviance.
# Cluster-mean centring (Zhang, Zyphur & Preacher 2009) at the team: *_between = team mean,
# *_within = deviation from it.
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(jsonlite)})
read_ref <- function(f) {
  d <- read.csv(f, colClasses = c(team = "character", case_manager = "character"))
  for (v in c("x_client", "alliance", "fidelity")) {
    d[[paste0(v, "_between")]] <- ave(d[[v]], d$team)
    d[[paste0(v, "_within")]] <- d[[v]] - d[[paste0(v, "_between")]]
  }
  d
}
study <- read_ref("tests/reference/multilevel_study.csv")
boundary <- read_ref("tests/reference/multilevel_boundary.csv")
nested <- "(1 | team/case_manager)"
models <- list(
  m_on_x = list(data = "study", fixed = "alliance ~ fidelity + site", random = nested, reml = TRUE),
  y_on_xm = list(data = "study", fixed = "outcome ~ fidelity + alliance + site", random = nested, reml = TRUE),
  m_on_x_team = list(data = "study", fixed = "alliance ~ fidelity + site", random = "(1 | team)", reml = TRUE),
  m_on_x_ml = list(data = "study", fixed = "alliance ~ fidelity + site", random = nested, reml = FALSE),
  y_on_xm_ml = list(data = "study", fixed = "outcome ~ fidelity + alliance + site", random = nested, reml = FALSE),
  m_dec = list(data = "study", fixed = "alliance ~ x_client_between + x_client_within + site", random = nested,
               reml = TRUE),
  y_dec = list(data = "study",
               fixed = "outcome ~ x_client_between + x_client_within + alliance_between + alliance_within + site",
               random = nested, reml = TRUE),
  y_dec_211 = list(data = "study", fixed = "outcome ~ fidelity + alliance_between + alliance_within + site",
                   random = nested, reml = TRUE),
  boundary_m = list(data = "boundary", fixed = "alliance ~ x_client + site", random = nested, reml = TRUE)
)
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-15, xtol_rel = 0, ftol_rel = 0, maxeval = 1e5))
out <- list()
for (name in names(models)) {
  spec <- models[[name]]
  d <- if (spec$data == "study") study else boundary
  form <- as.formula(paste(spec$fixed, "+", spec$random))
  fit_default <- lmer(form, data = d, REML = spec$reml)
  fit <- lmer(form, data = d, REML = spec$reml, control = tight)
  s <- summary(fit)$coefficients
  vc <- as.data.frame(VarCorr(fit))
  out[[name]] <- list(
    data = spec$data, fixed = spec$fixed, random = spec$random, reml = spec$reml,
    terms = rownames(s), coef = unname(s[, "Estimate"]), se = unname(s[, "Std. Error"]),
    df = unname(s[, "df"]), t = unname(s[, "t value"]), p = unname(s[, "Pr(>|t|)"]),
    vcov = unname(as.matrix(vcov(fit))),
    variance = setNames(as.list(vc$vcov), vc$grp), theta = unname(getME(fit, "theta")),
    deviance = if (spec$reml) unname(REMLcrit(fit)) else unname(deviance(fit)),
    default_deviance = if (spec$reml) unname(REMLcrit(fit_default)) else unname(deviance(fit_default)),
    log_likelihood = as.numeric(logLik(fit)), singular = isSingular(fit), n = nrow(d)
  )
}
out$meta <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                 lmerTest = as.character(packageVersion("lmerTest")),
                 df = "lmerTest Satterthwaite (summary of lmerModLmerTest)")
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, matrix = "rowmajor"),
           "tests/reference/multilevel_lme4.json")
