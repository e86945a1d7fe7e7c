"""A simulated deployment with a known truth, for the label-source tests (unit and end to end).

Units have ``P(bad) = sigmoid(-1.5 + 1.5 x0 - x1)``; the model's score is that probability
(perfectly calibrated) and it flags at ``threshold``. A share of units is held out (today's
process: never act); on the model's arm a flag *prevents* the bad outcome, so the delayed outcome
of a flagged unit reads "good" whatever the truth was. Reviewers see the truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def population(n: int, seed: int) -> pd.DataFrame:
    """Units with features, the true probability and the true outcome."""
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(size=n), rng.normal(size=n)
    p = 1 / (1 + np.exp(-(-1.5 + 1.5 * x0 - x1)))
    y = (rng.random(n) < p).astype(int)
    return pd.DataFrame({"unit": [f"u{seed}-{i}" for i in range(n)], "x0": x0, "x1": x1, "p": p, "y": y})


def deploy(pop: pd.DataFrame, seed: int, holdout: float = 0.2, audit: float = 0.1,
           threshold: float = 0.5) -> pd.DataFrame:
    """The log a deployment writes, with the labels that arrive: the columns ``window_parts`` reads."""
    rng = np.random.default_rng(seed + 10_000)
    n = len(pop)
    p, y = pop["p"].to_numpy(), pop["y"].to_numpy()
    arm = np.where(rng.random(n) < holdout, "holdout", "model")
    f = (p >= threshold).astype(int)
    dec = np.where((arm == "model") & (f == 1), "flag", "auto")
    audited = (arm == "model") & (dec == "auto") & (rng.random(n) < audit)
    pi = np.where(dec == "flag", 1.0, np.where(arm == "model", audit, 0.0))
    observed = np.where(dec == "flag", 0, y)  # the model's action prevents the bad outcome
    reviewed = (dec == "flag") | audited     # flagged cases and the audit sample are reviewed
    return pd.DataFrame({
        "_score": p, "_flag": f, "_dec": dec, "_label": observed.astype(str), "_arm": arm,
        "_audit": audited.astype(int), "_pi": pi, "_rlabel": np.where(reviewed, y.astype(str), None),
        "_lsrc": np.where(arm == "holdout", "holdout", "outcome"), "y": y, "p": p})


def truth(pop: pd.DataFrame, log: pd.DataFrame, threshold: float = 0.5) -> dict:
    """The model's true precision (expected, over every unit) and recall on the model's arm."""
    p, y = pop["p"].to_numpy(), pop["y"].to_numpy()
    f = p >= threshold
    m = log["_arm"].to_numpy() == "model"
    return {"precision": float(p[f].mean()), "recall": float((y[m] & f[m]).sum() / y[m].sum()),
            "positive_rate": float(y[m].mean())}


def simulated_case(root, **spec):
    """A binary case on ``population(4000, 100)`` in ``root`` (extra spec sections in ``spec``) and a
    calibrated logistic model: returns ``(case, dataset, version)`` where ``version(threshold)`` is a
    registrable bundle of that model with its monitoring reference."""
    import yaml
    from sklearn.linear_model import LogisticRegression

    from mlcase.bundle import ModelBundle
    from mlcase.case import load_case
    from mlcase.data import prepare
    from mlcase.monitor import build_reference

    root.mkdir(parents=True, exist_ok=True)
    train = population(4000, 100)
    train["bad"] = np.where(train["y"] == 1, "yes", "no")
    train[["unit", "x0", "x1", "bad"]].to_csv(root / "train.csv", index=False)
    full = {"name": "prevented", "decision": "which units get the intervention that prevents a bad outcome",
            "task": "binary", "data": {"source": "train.csv", "target": "bad", "positive": "yes", "id": "unit"},
            "costs": {"true_positive": 10, "false_positive": 10, "false_negative": 100}, **spec}
    (root / "case.yaml").write_text(yaml.safe_dump(full, sort_keys=False))
    case = load_case(root)
    ds = prepare(case)
    model = LogisticRegression(C=1e6, max_iter=1000).fit(ds.X_train, ds.y_train)

    def version(threshold: float) -> ModelBundle:
        b = ModelBundle(model=model, name="logistic", role="candidate", task="binary", features=list(ds.features),
                        schema=ds.schema.to_dict(), classes=ds.classes, positive=ds.positive, threshold=threshold)
        b.reference = build_reference(ds, b)
        return b

    return case, ds, version
