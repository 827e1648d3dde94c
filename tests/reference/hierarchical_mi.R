# Reference for pooled hierarchical regression over multiple imputations (tests/test_regression.py):
# mice 3.x pool.r.squared (Harel 2009), D2 (Li, Meng, Raghunathan & Rubin 1991, via mitml) and
# pool() (Rubin's rules, Barnard-Rubin df).  Run from the repository root:
#   Rscript tests/reference/hierarchical_mi.R
# Writes tests/reference/hierarchical_mi.csv (the m completed data sets, column .imp) and .json.
suppressPackageStartupMessages({library(mice); library(jsonlite)})
set.seed(5)
n <- 180
site <- factor(sample(c("A", "B", "C"), n, replace = TRUE))
age <- round(rnorm(n, 40, 10))
gender <- rbinom(n, 1, 0.5)
base <- rnorm(n, 80, 15)
out9 <- 0.5 * base + rnorm(n, 0, 12)
alliance <- 55 + 0.2 * out9 + 3 * (site == "B") + rnorm(n, 0, 12)
d <- data.frame(alliance, age, gender, site, base, out9)
d$out9[sample(n, 30)] <- NA
d$alliance[sample(n, 20)] <- NA
d$age[sample(n, 10)] <- NA
imp <- mice(d, m = 5, method = "pmm", seed = 11, printFlag = FALSE)
long <- complete(imp, "long")
write.csv(long[, c(".imp", "alliance", "age", "gender", "site", "base", "out9")],
          "tests/reference/hierarchical_mi.csv", row.names = FALSE)

long <- read.csv("tests/reference/hierarchical_mi.csv")
long$site <- factor(long$site)
mids <- as.mids(cbind(.id = rep(seq_len(n), 5), long[long$.imp > 0, ]) |>
                  rbind(cbind(.id = seq_len(n), .imp = 0, d)))
fit0 <- with(mids, lm(alliance ~ 1))
fit1 <- with(mids, lm(alliance ~ age + gender + site + base))
fit2 <- with(mids, lm(alliance ~ age + gender + site + base + out9))
d2_1 <- D2(fit1, fit0)$result
d2_2 <- D2(fit2, fit1)$result
r2_1 <- pool.r.squared(fit1)
r2_2 <- pool.r.squared(fit2)
ar2_2 <- pool.r.squared(fit2, adjusted = TRUE)
s <- summary(pool(fit2))
out <- list(
  m = 5, n = n,
  block1 = list(r2 = r2_1[1, "est"], F = d2_1[1, "F.value"], df1 = d2_1[1, "df1"], df2 = d2_1[1, "df2"],
                p = d2_1[1, "P(>F)"], riv = d2_1[1, "RIV"]),
  block2 = list(r2 = r2_2[1, "est"], adj_r2 = ar2_2[1, "est"], F = d2_2[1, "F.value"], df1 = d2_2[1, "df1"],
                df2 = d2_2[1, "df2"], p = d2_2[1, "P(>F)"], riv = d2_2[1, "RIV"]),
  coefficients = lapply(split(s, seq_len(nrow(s))), function(r) list(term = as.character(r$term),
      estimate = r$estimate, std_error = r$std.error, statistic = r$statistic, df = r$df, p = r$p.value)),
  meta = list(R = R.version.string, mice = as.character(packageVersion("mice")),
              mitml = as.character(packageVersion("mitml")))
)
names(out$coefficients) <- NULL
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/hierarchical_mi.json")
