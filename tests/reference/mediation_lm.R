# Reference values for tests/test_mediation_r.py (run from the repository root):
#   Rscript tests/reference/mediation_lm.R
# Reads tests/reference/mediation_lm.csv (a copy of the bundled example) and writes
# tests/reference/mediation_lm.json: the three PROCESS Model 4 equations fitted with lm(),
# their coefficients, classical SEs, sandwich::vcovHC HC0-HC4 and sandwich::vcovCL (type HC1 = CR1,
# clusters = site) SEs, R^2, MSE, F and the Wald F of all slopes under each covariance.
suppressPackageStartupMessages({library(sandwich); library(jsonlite)})
raw <- read.csv("tests/reference/mediation_lm.csv")
# PROCESS fits all equations on one listwise-complete sample
used <- c("fidelity", "alliance", "qol", "age", "gender", "housing", "employment", "education", "ace",
          "site", "long_hosp", "qol_baseline")
d <- raw[complete.cases(raw[, used]), ]
d_cl <- raw[complete.cases(raw[, c("fidelity", "alliance", "qol", "age", "ace", "site")]), ]
covs <- "age + gender + housing + employment + education + ace + factor(site) + long_hosp + qol_baseline"
forms <- list(
  mediator = paste("alliance ~ fidelity +", covs),
  outcome  = paste("qol ~ fidelity + alliance +", covs),
  total    = paste("qol ~ fidelity +", covs),
  # cluster-robust case: site is the cluster, not a covariate
  outcome_cl = "qol ~ fidelity + alliance + age + ace")
wald_F <- function(fit, V) {
  b <- coef(fit)[-1]; Vs <- V[-1, -1, drop = FALSE]
  as.numeric(t(b) %*% solve(Vs, b)) / length(b)
}
out <- list(R_version = R.version.string, sandwich = as.character(packageVersion("sandwich")))
for (nm in names(forms)) {
  dd <- if (nm == "outcome_cl") d_cl else d
  fit <- lm(as.formula(forms[[nm]]), data = dd)
  s <- summary(fit)
  res <- list(n = nobs(fit), coef = unname(coef(fit)), names = names(coef(fit)),
              r2 = s$r.squared, mse = s$sigma^2, F = unname(s$fstatistic[1]),
              df1 = unname(s$fstatistic[2]), df2 = unname(s$fstatistic[3]),
              se = list(nonrobust = unname(sqrt(diag(vcov(fit))))), F_robust = list())
  for (type in c("HC0", "HC1", "HC2", "HC3", "HC4")) {
    V <- vcovHC(fit, type = type)
    res$se[[type]] <- unname(sqrt(diag(V)))
    res$F_robust[[type]] <- wald_F(fit, V)
  }
  Vcl <- vcovCL(fit, cluster = dd$site, type = "HC1")
  res$se[["CR1"]] <- unname(sqrt(diag(Vcl)))
  # with G clusters the CR1 covariance has rank <= G - 1: no Wald F for more slopes (as in Stata)
  G <- length(unique(dd$site))
  res$F_robust[["CR1"]] <- if (length(coef(fit)) - 1 <= G - 1) wald_F(fit, Vcl) else NA
  out[[nm]] <- res
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/mediation_lm.json")
