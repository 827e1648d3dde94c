# Reference values for tests/test_mediation_parallel.py (run from the repository root):
#   Rscript tests/reference/process_model4.R
# Data: tests/reference/process_model4.csv (made by tests/reference/process_model4_data.py).
# Writes tests/reference/process_model4.json with
#   lm:       every equation of PROCESS Model 4 with two parallel mediators (alliance, hope), for
#             covariates in all equations, only the mediator equations (covmy=1), only the outcome
#             equation (covmy=2), and a per-covariate map (age -> mediators, ace -> outcome);
#             coefficients, SEs (classical and sandwich HC3) in PROCESS order.
#   lavaan:   the same model (covariates in all equations) as an SEM (ML, fixed.x, residual
#             covariance of the two mediators free): a1, a2, b1, b2, c', the specific, total and
#             contrast indirect effects with delta-method SEs, and vcov(a1, a2).
#   glm:      logistic outcome and total equations for the 0/1 `employed` (binomial, logit; IRLS
#             run to epsilon = 1e-14 so the estimates are converged to the last digits):
#             coefficients, SEs, z, p, logLik, null logLik.
#   cr2:      clubSandwich CR2 (cluster = site) of the outcome equation, Satterthwaite df.
suppressPackageStartupMessages({library(lavaan); library(jsonlite); library(sandwich); library(clubSandwich)})
d <- read.csv("tests/reference/process_model4.csv")
eq <- function(f) {
  fit <- lm(f, data = d)
  list(names = names(coef(fit)), coef = unname(coef(fit)), se = unname(sqrt(diag(vcov(fit)))),
       se_hc3 = unname(sqrt(diag(vcovHC(fit, type = "HC3")))), r2 = summary(fit)$r.squared)
}
out <- list(R_version = R.version.string, lavaan = as.character(packageVersion("lavaan")),
            clubSandwich = as.character(packageVersion("clubSandwich")), n = nrow(d))
designs <- list(
  all = list(med = "age + ace", out = "age + ace"),
  mediators = list(med = "age + ace", out = NULL),
  outcome = list(med = NULL, out = "age + ace"),
  map = list(med = "age", out = "ace"))
rhs <- function(base, cov) if (is.null(cov)) base else paste(base, "+", cov)
out$lm <- lapply(designs, function(s) list(
  alliance = eq(as.formula(rhs("alliance ~ fidelity", s$med))),
  hope = eq(as.formula(rhs("hope ~ fidelity", s$med))),
  outcome = eq(as.formula(rhs("qol ~ fidelity + alliance + hope", s$out))),
  total = eq(as.formula(rhs("qol ~ fidelity", s$out)))))
model <- "
alliance ~ a1*fidelity + age + ace
hope ~ a2*fidelity + age + ace
qol ~ cp*fidelity + b1*alliance + b2*hope + age + ace
alliance ~~ hope
ind1 := a1*b1
ind2 := a2*b2
total := a1*b1 + a2*b2
contrast := a1*b1 - a2*b2
"
fit <- sem(model, data = d, estimator = "ML", fixed.x = TRUE)
pe <- parameterEstimates(fit)
get <- function(lbl) { r <- pe[pe$label == lbl, ]; list(est = r$est, se = r$se) }
out$lavaan_fit <- lapply(setNames(nm = c("a1", "a2", "b1", "b2", "cp", "ind1", "ind2", "total", "contrast")), get)
V <- vcov(fit)
out$lavaan_fit$cov_a1_a2 <- V["a1", "a2"]
out$lavaan_fit$n <- nobs(fit)
lg <- function(f) {
  fit <- glm(f, data = d, family = binomial(), control = glm.control(epsilon = 1e-14, maxit = 100))
  s <- summary(fit)$coefficients
  list(names = rownames(s), coef = unname(s[, 1]), se = unname(s[, 2]), z = unname(s[, 3]), p = unname(s[, 4]),
       loglik = as.numeric(logLik(fit)),
       loglik_null = as.numeric(logLik(glm(employed ~ 1, data = d, family = binomial()))))
}
out$glm <- list(outcome = lg(employed ~ fidelity + alliance + hope + age),
                total = lg(employed ~ fidelity + age))
cfit <- lm(qol ~ fidelity + alliance + age, data = d)
ct <- coef_test(cfit, vcov = "CR2", cluster = d$site, test = "Satterthwaite")
out$cr2 <- list(names = names(coef(cfit)), se = unname(ct$SE), df = unname(ct$df_Satt), p = unname(ct$p_Satt))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/process_model4.json")
