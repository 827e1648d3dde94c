# Reference values for tests/test_pooling.py: mice::pool (Rubin 1987, Barnard-Rubin 1999 df),
# mice::pool.r.squared (Harel 2009) and mice::D1 (Li, Raghunathan & Rubin 1991) on the fixed
# completed data sets in mice_pool_data.csv (written by mice_pool_data.py).
# Run from the repository root:  Rscript tests/reference/mice_pool.R
suppressPackageStartupMessages({library(mice); library(jsonlite)})
here <- "tests/reference"
d <- read.csv(file.path(here, "mice_pool_data.csv"), check.names = FALSE)
sets <- split(d[, c("x", "w", "m", "y")], d[[".imp"]])
models <- list(mediator = m ~ x + w, outcome = y ~ x + m + w)
out <- list(mice_version = as.character(packageVersion("mice")), R_version = R.version.string, models = list())
for (name in names(models)) {
  fits <- lapply(sets, function(s) lm(models[[name]], data = s))
  null_fits <- lapply(sets, function(s) lm(update(models[[name]], . ~ 1), data = s))
  mira <- as.mira(fits)
  p <- pool(mira)
  s <- summary(p, conf.int = TRUE, conf.level = 0.95)
  r2 <- pool.r.squared(mira)
  d1 <- D1(mira, as.mira(null_fits))   # dfcom = residual df of the lm fits: Reiter (2007) df
  d1_large <- mitml::testModels(mice:::as.mitml.result(mira), mice:::as.mitml.result(as.mira(null_fits)),
                                method = "D1")$test                # no dfcom: Li, Raghunathan & Rubin df
  out$models[[name]] <- list(
    pooled = p$pooled[, c("term", "m", "estimate", "ubar", "b", "t", "dfcom", "df", "riv", "lambda", "fmi")],
    summary = data.frame(term = as.character(s$term), std_error = s$std.error, statistic = s$statistic,
                         df = s$df, p_value = s$p.value, ci_low = s[["2.5 %"]], ci_high = s[["97.5 %"]]),
    r_squared = unname(r2[1, "est"]),
    D1 = list(statistic = unname(d1$result[1, "F.value"]), df1 = unname(d1$result[1, "df1"]),
              df2 = unname(d1$result[1, "df2"]), p = unname(d1$result[1, "P(>F)"]),
              riv = unname(d1$result[1, 5]), dfcom = d1$dfcom),
    D1_large_sample = list(statistic = unname(d1_large[1, 1]), df1 = unname(d1_large[1, 2]),
                           df2 = unname(d1_large[1, 3]), p = unname(d1_large[1, 4]), riv = unname(d1_large[1, 5]))
  )
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(here, "mice_pool.json"))
