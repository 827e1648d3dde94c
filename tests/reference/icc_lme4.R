# Reference ICCs for tests/test_nested.py: lme4 REML random-intercept models.
# Run from the repository root:  Rscript tests/reference/icc_lme4.R
# Writes tests/reference/icc_lme4.csv (the data it fits) and tests/reference/icc_lme4.json.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
set.seed(20241126)
n_team <- 14
cm_per_team <- sample(2:5, n_team, replace = TRUE)
rows <- list()
for (t in seq_len(n_team)) {
  for (k in seq_len(cm_per_team[t])) {
    n_cl <- sample(3:9, 1)
    # case-manager ids repeat across teams ("cm1" in every team): nesting must come from the team
    rows[[length(rows) + 1]] <- data.frame(team = sprintf("T%02d", t), case_manager = sprintf("cm%d", k),
                                           n = n_cl)
  }
}
units <- do.call(rbind, rows)
d <- units[rep(seq_len(nrow(units)), units$n), c("team", "case_manager")]
rownames(d) <- NULL
u_team <- setNames(rnorm(n_team), sprintf("T%02d", seq_len(n_team)))
cm_key <- paste(d$team, d$case_manager)
u_cm <- setNames(rnorm(length(unique(cm_key))), unique(cm_key))
e <- rnorm(nrow(d))
# three outcomes with small / moderate / larger clustering, on study-like scales
d$y_low  <- 60 + 1.0 * u_team[d$team] + 1.5 * u_cm[cm_key] + 12 * e
d$y_mid  <- 4.5 + 0.25 * u_team[d$team] + 0.2 * u_cm[cm_key] + 0.9 * rnorm(nrow(d))
d$y_high <- 50 + 4 * u_team[d$team] + 3 * u_cm[cm_key] + 10 * rnorm(nrow(d))
d$y_mid[sample(nrow(d), 25)] <- NA   # listwise handling of missing values
write.csv(d, "tests/reference/icc_lme4.csv", row.names = FALSE, na = "")

d <- read.csv("tests/reference/icc_lme4.csv", colClasses = c(team = "character", case_manager = "character"))
# Tight optimizer tolerances: lme4's defaults (xtol_abs = ftol_abs = 1e-8) stop short of the REML
# optimum by ~1e-4 relative in a variance component near 0; the default criterion is kept too.
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-15, xtol_rel = 0, ftol_rel = 0, maxeval = 1e5))
out <- list()
for (y in c("y_low", "y_mid", "y_high")) {
  dd <- d[!is.na(d[[y]]), ]
  f1 <- lmer(as.formula(paste(y, "~ 1 + (1 | team)")), data = dd, REML = TRUE, control = tight)
  f1_default <- lmer(as.formula(paste(y, "~ 1 + (1 | team)")), data = dd, REML = TRUE)
  v1 <- as.data.frame(VarCorr(f1))
  f2 <- lmer(as.formula(paste(y, "~ 1 + (1 | team/case_manager)")), data = dd, REML = TRUE, control = tight)
  f2_default <- lmer(as.formula(paste(y, "~ 1 + (1 | team/case_manager)")), data = dd, REML = TRUE)
  v2 <- as.data.frame(VarCorr(f2))
  out[[y]] <- list(
    n = nrow(dd),
    team_only = list(team = v1$vcov[v1$grp == "team"], residual = v1$vcov[v1$grp == "Residual"],
                     reml_criterion = unname(REMLcrit(f1)), default_reml_criterion = unname(REMLcrit(f1_default))),
    nested = list(team = v2$vcov[v2$grp == "team"], case_manager = v2$vcov[v2$grp == "case_manager:team"],
                  residual = v2$vcov[v2$grp == "Residual"], reml_criterion = unname(REMLcrit(f2)),
                  default_reml_criterion = unname(REMLcrit(f2_default)))
  )
}
out$meta <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                 models = c("lmer(y ~ 1 + (1 | team), REML = TRUE)", "lmer(y ~ 1 + (1 | team/case_manager), REML = TRUE)"))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/icc_lme4.json")
