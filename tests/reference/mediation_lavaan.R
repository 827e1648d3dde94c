# Reference values for tests/test_mediation_lavaan.py (run from the repository root):
#   Rscript tests/reference/mediation_lavaan.R
# Fits the PROCESS Model 4 path model of the bundled example as a structural equation model with
# lavaan (ML, observed covariates, listwise), defining the indirect effect ab := a*b, and writes
# tests/reference/mediation_lavaan.json: the estimates and ML (n-denominator) standard errors of
# a, b, c' and ab (delta-method, first-order Sobel SE) and the covariance of a and b.
suppressPackageStartupMessages({library(lavaan); library(jsonlite)})
raw <- read.csv("tests/reference/mediation_lm.csv")
used <- c("fidelity", "alliance", "qol", "age", "gender", "housing", "employment", "education", "ace",
          "site", "long_hosp", "qol_baseline")
d <- raw[complete.cases(raw[, used]), ]
for (lev in sort(unique(d$site))[-1]) d[[paste0("site", lev)]] <- as.numeric(d$site == lev)
covs <- paste(c("age", "gender", "housing", "employment", "education", "ace",
                paste0("site", sort(unique(d$site))[-1]), "long_hosp", "qol_baseline"), collapse = " + ")
model <- paste0("alliance ~ a*fidelity + ", covs, "\n",
                "qol ~ cp*fidelity + b*alliance + ", covs, "\n",
                "ab := a*b\n")
fit <- sem(model, data = d, estimator = "ML", fixed.x = TRUE)
pe <- parameterEstimates(fit)
get <- function(lbl) pe[pe$label == lbl, ]
V <- vcov(fit)
out <- list(lavaan = as.character(packageVersion("lavaan")), R_version = R.version.string, n = nobs(fit))
for (lbl in c("a", "b", "cp", "ab")) out[[lbl]] <- list(est = get(lbl)$est, se = get(lbl)$se)
out$cov_ab <- V["a", "b"]
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/mediation_lavaan.json")
