"""``mlcase score`` for a forecast case: forecast every series of a file, each as ``POST /forecast`` would.

The input is the case's long layout (``data.series``, ``data.time``, the target and the
covariates). Rows with the target filled are each series' history; rows after them with the
target empty carry the known covariates of the steps to forecast. The output has one row per
series and step: ``series, ds, step, forecast, lo, hi, quantile_forecast, tier, fallback,
reason``; a series the service refuses (too short, a gap, a missing covariate) goes to the
errors file with the reason, and the others are still forecast. On ``--engine dask`` the
series are forecast in parallel by a Dask bag (each partition a group of series).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..data import to_times
from ..errors import DataError, MlcaseError
from .data import derive_columns


def _items(case, frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    d = case.spec.data
    frame = derive_columns(case, frame)
    for col in [c for c in (d.time, d.target, d.series) if c]:
        if col not in frame.columns:
            raise DataError(f"INPUT: the column '{col}' of the case's data is missing",
                            "score a file laid out like the case's data (series, time, target, covariates)")
    key = frame[d.series].astype(str) if d.series else pd.Series("series", index=frame.index)
    return [(str(k), part) for k, part in frame.groupby(key, sort=False)]


def _request(case, part: pd.DataFrame, known: list[str], past: list[str]) -> dict:
    d = case.spec.data
    target = pd.to_numeric(part[d.target], errors="coerce")
    seen = target.notna().to_numpy()
    # rows before the series' first value are not part of it (as in training: forecast.data.load_series)
    first = int(seen.nonzero()[0].min()) if seen.any() else 0
    last = int(seen.nonzero()[0].max()) + 1 if seen.any() else 0
    parsed = to_times(part[d.time])  # whole years and decimal years as in training, sent as ISO dates
    times = [str(v) if pd.isna(t) else t.isoformat() for v, t in zip(part[d.time], parsed, strict=True)]
    hist, fut = part.iloc[first:last], part.iloc[last:]
    history = [{"ds": t, "y": y, **{c: r[c] for c in past if c in part.columns}}
               for t, y, (_, r) in zip(times[first:last], hist[d.target], hist.iterrows(), strict=True)]
    future = [{"ds": t, **{c: r[c] for c in known if c in part.columns}}
              for t, (_, r) in zip(times[last:], fut.iterrows(), strict=True)]
    return {"history": history, "future": future or None}


def forecast_frame(case, service, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(forecasts, errors)`` of every series in ``frame`` (see the module docstring)."""
    rows, errors = [], []
    for series, part in _items(case, frame):
        try:
            item = {"series": series, **_request(case, part.sort_values(case.spec.data.time, kind="stable",
                                                                        key=to_times),
                                                 service.known, service.past_only)}
            history, future, _ = service.frames(item, f"series '{series}'")
            answer = service.answer(history, future, series)
        except MlcaseError as exc:
            errors.append({"series": series, "issue": str(exc)})
            continue
        for p in answer["points"]:
            rows.append({"series": series, "ds": p["ds"], "step": p["step"], "forecast": p["forecast"],
                         "lo": p["lo"], "hi": p["hi"], "quantile_forecast": p["quantile_forecast"],
                         "tier": answer["tier"], "fallback": answer["fallback"], "reason": answer["reason"]})
    cols = ["series", "ds", "step", "forecast", "lo", "hi", "quantile_forecast", "tier", "fallback", "reason"]
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(errors, columns=["series", "issue"])


def forecast_file(case, input, output, version=None, errors_path=None, engine: str = "local", scheduler=None,
                  bundles: dict | None = None):
    """Forecast every series of ``input`` into ``output`` (CSV or Parquet); returns a :class:`mlcase.score.ScoreResult`."""
    from ..data import read_table
    from ..score import ScoreResult, _check_output
    from .service import ForecastService, load_served

    t0 = time.perf_counter()
    input, output = Path(input), Path(output)
    errors_path = Path(errors_path) if errors_path else output.with_name(output.stem + ".errors.csv")
    _check_output(output, "-o", input)
    _check_output(errors_path, "--errors", input, output)
    given = (bundles or {}).get("model")  # else as `mlcase serve`: the champion, else seasonal naive
    bundle, schema, notes = (given, None, []) if given is not None else load_served(case, version)
    service = ForecastService(bundle, schema=schema)
    startup_s = time.perf_counter() - t0
    try:
        frame = read_table(input.resolve(), what="INPUT")
        t1 = time.perf_counter()
        if engine == "dask":
            out, err = _dask(case, service, frame, scheduler)
        else:
            out, err = forecast_frame(case, service, frame)
    finally:
        service.close()
    _write(out, output)
    _write(err, errors_path)
    fallbacks = out.drop_duplicates("series")["tier"].value_counts().to_dict() if len(out) else {}
    fallbacks.pop("model", None)
    n_series = int(out["series"].nunique()) if len(out) else 0
    return ScoreResult(output=output, errors_path=errors_path, rows=int(len(frame)), scored=int(len(out)),
                       invalid_rows=int(len(err)), issues=int(len(err)), fallbacks=fallbacks, engine=engine,
                       seconds=time.perf_counter() - t0, startup_s=startup_s, scoring_s=time.perf_counter() - t1,
                       model_version=bundle.version if bundle is not None else None, series=n_series,
                       notes=[*notes, f"{n_series} series forecast {service.horizon} steps ahead (one output row per "
                              "series and step)"])


def _dask(case, service, frame: pd.DataFrame, scheduler):
    import dask.bag as db

    if scheduler:
        raise DataError("--scheduler: forecast scoring runs its Dask bag on local threads (the served model and its "
                        "fallback stay in this process)", "drop --scheduler, or use --engine local")
    groups = [part for _, part in _items(case, frame)]
    results = db.from_sequence(groups, npartitions=min(len(groups), 16)).map(
        lambda p: forecast_frame(case, service, p)).compute(scheduler="threads")
    return (pd.concat([r[0] for r in results], ignore_index=True),
            pd.concat([r[1] for r in results], ignore_index=True))


def _write(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() in (".parquet", ".pq"):
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False)
    tmp.replace(path)
