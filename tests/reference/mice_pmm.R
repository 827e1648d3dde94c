# Reference values for tests/test_impute_vs_mice.py (run from the repository root):
#   python tests/reference/mice_pmm_data.py && Rscript tests/reference/mice_pmm.R
# Imputes tests/reference/mice_pmm_data.csv with R mice (predictive mean matching, m = 200,
# 20 iterations), fits lm(y ~ x1 + x2) in each completed data set and pools with Rubin's rules.
# Writes tests/reference/mice_pmm.json: pooled estimates, SEs and fractions of missing information,
# plus the complete-case fit for contrast.
suppressPackageStartupMessages({library(mice); library(jsonlite)})
d <- read.csv("tests/reference/mice_pmm_data.csv")
imp <- mice(d, m = 200, maxit = 20, method = "pmm", seed = 2026, printFlag = FALSE)
pooled <- summary(pool(with(imp, lm(y ~ x1 + x2))))
pl <- pool(with(imp, lm(y ~ x1 + x2)))$pooled
cc <- summary(lm(y ~ x1 + x2, data = d))$coefficients
out <- list(mice = as.character(packageVersion("mice")), R_version = R.version.string, m = 200, maxit = 20,
            terms = as.character(pooled$term), estimate = pooled$estimate, se = pooled$std.error,
            fmi = pl$fmi, complete_case_estimate = unname(cc[, 1]), complete_case_se = unname(cc[, 2]))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/mice_pmm.json")
