# Reference values for tests/test_power.py (regression power, G*Power convention lambda = f2 * N).
# Run from tests/reference/:  Rscript power_regression.R   -> power_regression.json
library(pwr)
library(jsonlite)
cases <- expand.grid(f2 = c(0.02, 0.0625, 0.1111, 0.35), n = c(40, 110, 311),
                     n_predictors = c(1, 3, 5), n_tested = c(1, 3, 5), alpha = c(0.05, 0.01))
cases <- cases[cases$n_tested <= cases$n_predictors, ]
cases$df1 <- cases$n_tested
cases$df2 <- cases$n - cases$n_predictors - 1
cases$lambda <- cases$f2 * cases$n
cases$f_crit <- qf(1 - cases$alpha, cases$df1, cases$df2)
# G*Power: P(F'(df1, df2, lambda = f2 * N) > F_crit), straight from R's noncentral F
cases$power <- pf(cases$f_crit, cases$df1, cases$df2, ncp = cases$lambda, lower.tail = FALSE)
# pwr.f2.test uses lambda = f2 * (u + v + 1): equal to G*Power only when every predictor is tested
cases$power_pwr <- mapply(function(u, v, f2, a) pwr.f2.test(u = u, v = v, f2 = f2, sig.level = a)$power,
                          cases$df1, cases$df2, cases$f2, cases$alpha)
# smallest N with power >= target (direct search over N with pf)
ss <- expand.grid(f2 = c(0.02, 0.0625, 0.15, 0.35), target = c(0.8, 0.9, 0.95),
                  n_predictors = c(1, 3), n_tested = c(1, 3), alpha = 0.05)
ss <- ss[ss$n_tested <= ss$n_predictors, ]
ss$n <- mapply(function(f2, target, p, q, a) {
  n <- p + 2
  repeat {
    pw <- pf(qf(1 - a, q, n - p - 1), q, n - p - 1, ncp = f2 * n, lower.tail = FALSE)
    if (pw >= target) return(n)
    n <- n + 1
  }
}, ss$f2, ss$target, ss$n_predictors, ss$n_tested, ss$alpha)
write_json(list(generated_by = "tests/reference/power_regression.R", r_version = R.version.string,
                pwr_version = as.character(packageVersion("pwr")),
                power = cases, sample_size = ss),
           "power_regression.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
