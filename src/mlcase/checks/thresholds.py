"""The thresholds of the data checks, in one place (each with what crossing it means)."""

MIN_CLASS_ROWS = 20          # fewer training rows of a class than this: too few to learn from (error)
IMBALANCE_RATE = 0.05        # minority share below this: heavy imbalance (warning)
NEAR_CONSTANT_SHARE = 0.99   # one value in at least this share of the non-missing rows (warning)
HIGH_MISSING = 0.5           # missing share of a feature (warning)
HIGH_CARDINALITY = 100       # distinct values of a categorical feature (warning)
DUPLICATE_WARN_SHARE = 0.01  # duplicate rows above this share warn; fewer are info
LEAK_ERROR = 0.98            # one-feature AUC (or R^2) at or above this: target leakage (error)
LEAK_WARN = 0.95             # ... at or above this: suspiciously strong (warning)
IDENTITY_R2 = 0.999          # out-of-fold R^2 of a linear fit on the numeric features: an exact identity (error)
LEAK_MIN_MINORITY = 30       # fewer rows of the rarer class than this: an AUC is too noisy to call a leak an error
# ... except a perfect separation (one-feature AUC 1: every row of a class beyond every other) over at least this many
# rows of the rarer class. Simulated (binormal, three times as many rows of the other class): a feature whose true AUC
# is 0.95 separates 15 rows perfectly in 0.5% of draws (0.97: 2.4%), 10 rows in 3.8% (0.97: 11%), 5 in 26%.
# Stat2Data::Film's `Good` is `Rating >= 3`: AUC 1.000 on 20 rows of the rarer class was a warning, and the run went GO.
LEAK_PERFECT_MIN_MINORITY = 15
PROXY_AUC = 0.8              # one-feature AUC predicting a sensitive column (warning)
PROXY_R2 = 0.5               # ... R^2 for a numeric sensitive column
SHIFT_PVALUE = 1e-3          # PSI must also be this significant to flag a split shift
MATURITY_DROP = 0.2          # relative drop of the recent positive rate flagged as immature labels
MATURITY_Z = 3.0             # ... and at least this many standard errors
LABEL_BEFORE_ERROR = 0.01    # share of rows whose label precedes the features' time (error above)
SAMPLE_ROWS = 100_000        # rows used by the statistical checks
