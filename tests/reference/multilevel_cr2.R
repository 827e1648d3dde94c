# Reference CR2 covariances and Satterthwaite df for tests/test_cr2.py (clubSandwich).
# Run from the repository root:  Rscript tests/reference/multilevel_cr2.R
# Data: tests/reference/multilevel_study.csv (made by tests/reference/multilevel_data.py).
suppressPackageStartupMessages({library(clubSandwich); library(jsonlite)})
d <- read.csv("tests/reference/multilevel_study.csv", colClasses = c(team = "character", case_manager = "character"))
d$cm_id <- paste(d$team, d$case_manager, sep = ":")
models <- list(
  m_on_x = list(formula = "alliance ~ fidelity + site", cluster = "team"),
  y_on_xm = list(formula = "outcome ~ fidelity + alliance + site", cluster = "team"),
  y_on_client = list(formula = "outcome ~ x_client + alliance + site", cluster = "team"),
  m_on_x_cm = list(formula = "alliance ~ fidelity + x_client + site", cluster = "cm_id")
)
out <- list()
for (name in names(models)) {
  spec <- models[[name]]
  fit <- lm(as.formula(spec$formula), data = d)
  V <- vcovCR(fit, cluster = d[[spec$cluster]], type = "CR2")
  ct <- coef_test(fit, vcov = V, test = "Satterthwaite")
  out[[name]] <- list(formula = spec$formula, cluster = spec$cluster, terms = names(coef(fit)),
                      coef = unname(coef(fit)), vcov = unname(as.matrix(V)),
                      se = unname(ct$SE), df = unname(ct$df_Satt), p = unname(ct$p_Satt))
}
out$meta <- list(R = R.version.string, clubSandwich = as.character(packageVersion("clubSandwich")),
                 call = "vcovCR(lm_fit, cluster, type = 'CR2'); coef_test(lm_fit, vcov = V, test = 'Satterthwaite')")
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, matrix = "rowmajor"),
           "tests/reference/multilevel_cr2.json")
