"""One forecast for one series, with its intervals, as ``POST /forecast`` and ``mlcase score`` answer it.

:class:`ForecastService` holds the served bundle and the seasonal-naive fallback (which needs no
model: it reads the history it is given). A request brings a series id, its recent history
(``ds``, the target and the past-only covariates) and the known covariates of the steps to
forecast. The model answers when it can; when it fails, runs past its time limit or the history
is shorter than the model needs (its lags, two seasons, AutoETS's 7 values), seasonal naive
answers, with ``fallback: true`` and the reason.
A request the client can fix (no history, a value that is not a number, a missing known
covariate) is a :class:`~mlcase.errors.DataError` naming it.
"""

from __future__ import annotations

import concurrent.futures as cf
import time

import numpy as np
import pandas as pd

from ..data import to_times
from ..errors import DataError
from ..times import TIME_DTYPE
from .data import DS, ID, Y, ended, fill_gaps, started
from .metrics import mase_scale
from .models import YHAT, LocalForecaster


class ForecastService:
    """Forecasts from a forecast bundle (``bundle`` None: seasonal naive only, from ``schema``); ``schema``
    (default the bundle's) says what a request must send."""

    def __init__(self, bundle, schema: dict | None = None, timeout_s: float = 10.0):
        self.bundle = bundle
        # the schema given (load_served's: the bundle's and the case's time expression), else the bundle's
        self.schema = dict(schema if schema is not None else bundle.schema if bundle is not None else {})
        s = self.schema
        self.horizon, self.freq, self.season = int(s["horizon"]), s["freq"], int(s["season_length"])
        self.known, self.past_only = list(s.get("known") or []), list(s.get("past_only") or [])
        self.min_history = int(s.get("min_history") or self.season)
        # the case's own names of the time and the target, which a row may send instead of 'ds' and 'y'
        # (as /rank takes the item column by its own name): forecast::gas sends 'time' and 'value'
        self.aliases = {k: n for k, n in (("ds", s.get("time")), (Y, s.get("target"))) if n and n != k}
        self.time_from = s.get("time_from")  # the drafted source's date expression (Year, Month -> date)
        self.fill = s.get("fill")            # forecast.fill: a history's gaps are filled as training's were
        self.conformal = dict((bundle.conformal if bundle is not None else None) or {})
        if bundle is None and s.get("floor_conformal"):  # the run's calibration of seasonal naive, with no model
            self.conformal = {"floor": dict(s["floor_conformal"])}
        self.floor = LocalForecaster("seasonal_naive", self.season, self.freq, self.horizon).fit()
        self.timeout_s = timeout_s
        self._pool = cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlcase-forecast")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def warm_up(self) -> dict:
        """Forecast a made-up series once through the model and seasonal naive, before ``/ready`` says so.

        The first forecast paid for compiling and importing what it reaches (statsforecast's numba
        kernels, the model's feature code): fpp3::us_change's first request took 2,442 ms, the next
        30 ms. The series: ``min_history`` plus a season of steps ending 2000-01-01, a seasonal wave
        over a trend; its covariates 0. Returns ``{"ms": ..., "tier": ...}``.
        """
        n = max(self.min_history, self.season) + self.season
        ds = pd.date_range(end=pd.Timestamp("2000-01-01"), periods=n, freq=self.freq)
        t = np.arange(n, dtype=float)
        history = pd.DataFrame({ID: "warm-up", DS: ds, Y: 100.0 + t + 10.0 * np.sin(2 * np.pi * t / self.season),
                                **{c: 0.0 for c in self.past_only}})
        future = None
        if self.known:
            steps = pd.date_range(ds[-1], periods=self.horizon + 1, freq=self.freq)[1:]
            future = pd.DataFrame({ID: "warm-up", DS: steps, **{c: 0.0 for c in self.known}})
        t0 = time.perf_counter()
        out = self.answer(history, future, "warm-up")
        return {"ms": round((time.perf_counter() - t0) * 1000, 3), "tier": out["tier"], "reason": out["reason"]}

    # ------------------------------------------------------------------ input
    def frames(self, item: dict, where: str = "request") -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
        """``(history, future, series)`` from one request object (a :class:`DataError` names what is wrong)."""
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected an object with 'history' (and 'series', 'future'), got "
                            f"{type(item).__name__}", "send {\"series\": ..., \"history\": [{\"ds\": ..., \"y\": ...}]}")
        series = str(item.get("series") if item.get("series") is not None else "series")
        hist = item.get("history")
        if not isinstance(hist, list) or not hist or not all(isinstance(r, dict) for r in hist):
            raise DataError(f"{where}.history: expected a non-empty list of objects with {self._said('ds')} and "
                            f"{self._said(Y)}", f"send at least {self.min_history} past steps of the series")
        # a past-only covariate may be null, as it may be missing in training (the model reads it as missing);
        # the target may not, and the future's known covariates are checked where they are read
        history = self._table(*self._named(hist), f"{where}.history", [Y, *self.past_only],
                              optional=[*self.past_only, *([Y] if self.fill else [])], fill=bool(self.fill))
        history.insert(0, ID, series)
        future = None
        fut = item.get("future")
        if fut is not None:
            if not isinstance(fut, list) or not all(isinstance(r, dict) for r in fut):
                raise DataError(f"{where}.future: expected a list of objects with {self._said('ds')} and the known covariates",
                                f"send one object per future step with {', '.join(self.known) or 'ds'}")
            future = self._table(*self._named(fut), f"{where}.future", self.known) if fut else None
            if future is not None:
                future.insert(0, ID, series)
        return history, future, series

    def _said(self, key: str) -> str:
        """``'ds' (or 'date')``: a field as a request may name it, the case's own column beside it."""
        name = self.aliases.get(key)
        return f"'{key}'" + (f" (or {name!r})" if name else "")

    def _named(self, rows: list[dict]) -> tuple[list[dict], dict]:
        """``(rows, shown)``: the case's time and target columns read as 'ds' and 'y' where a row sends those
        names, and the names the request used (an error names the field as it was sent). Rows laid out as the
        raw data (Year and Month, no date) get the date the case's source query makes, as `mlcase score` does."""
        rows = self._dated(rows)
        used = {k: n for k, n in self.aliases.items() if any(k not in r and n in r for r in rows)}
        if not used:
            return rows, {}
        return [{**r, **{k: r[n] for k, n in used.items() if k not in r and n in r}} for r in rows], used

    def _dated(self, rows: list[dict]) -> list[dict]:
        time = self.aliases.get("ds")
        if not self.time_from or not time or all("ds" in r or time in r for r in rows):
            return rows
        import duckdb

        from .data import evaluate_sql

        try:
            values = evaluate_sql(pd.DataFrame(rows), self.time_from)
        except (duckdb.Error, ValueError, TypeError):
            return rows  # the columns it reads are missing too: the error names the time column
        return [r if ("ds" in r or time in r) else {**r, time: str(pd.Timestamp(v).date()) if pd.notna(v) else None}
                for r, v in zip(rows, values, strict=True)]

    def _table(self, rows: list[dict], shown: dict, where: str, numeric: list[str], optional=(),
               fill: bool = False) -> pd.DataFrame:
        """The rows as a frame sorted by time, checked (``fill``: a history's gaps filled by ``forecast.fill``)."""
        missing = [c for c in ["ds", *numeric] if any(c not in r for r in rows)]
        if missing:
            i = next(i for i, r in enumerate(rows) if missing[0] not in r)
            name = self.aliases.get(missing[0])
            raise DataError(f"{where}[{i}]: '{missing[0]}' is missing",
                            f"send '{missing[0]}'{f' (or {name!r}, its column in the case)' if name else ''} in every row")
        ds = to_times(pd.Series([r["ds"] for r in rows]))
        if ds.isna().any():
            i = int(np.flatnonzero(ds.isna())[0])
            raise DataError(f"{where}[{i}].{shown.get('ds', 'ds')}: {rows[i]['ds']!r} is not a date",
                            "send ISO dates such as 2016-08-28")
        out = pd.DataFrame({DS: ds.astype(TIME_DTYPE)})
        before = self._before_first_value(rows, ds, where) if Y in numeric else None
        for c in numeric:
            raw = pd.Series([r[c] for r in rows], dtype="object")
            values = pd.to_numeric(raw, errors="coerce")
            bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
            if c == Y:  # the target is a quantity: true was read as 1 (a covariate may be a flag, as in training)
                bad |= raw.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
            if c in optional:
                bad &= raw.notna().to_numpy()  # null is missing; text or an infinity is still wrong
            if before is not None:
                bad &= ~before   # steps before the series' first value are not read (below)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                name = shown.get(c, c)
                raise DataError(f"{where}[{i}].{name}: {rows[i][c]!r} is not a finite number",
                                f"send a number for '{name}'")
            out[c] = values.to_numpy(dtype=float)
        if before is not None and before.any():
            out = out[~before]
        out = out.sort_values(DS, kind="stable").reset_index(drop=True)
        if out[DS].duplicated().any():
            raise DataError(f"{where}: a time appears twice ({out[DS][out[DS].duplicated()].iloc[0]})",
                            "send one row per step")
        if fill:
            filled, _, _ = fill_gaps(out.assign(**{ID: "request"}), self.freq, self.fill, self.known)
            out = filled.drop(columns=ID)   # (the steps before the first value were left out above)
        grid = pd.date_range(out[DS].iloc[0], out[DS].iloc[-1], freq=self.freq)
        if len(grid) != len(out) or not grid.equals(pd.DatetimeIndex(out[DS])):
            raise DataError(f"{where}: the times are not consecutive steps of frequency {self.freq}",
                            "send every step, without gaps" + (f" (forecast.fill: {self.fill} fills a missing step, "
                                                              "not a time off the grid)" if self.fill else ""))
        return out

    def _before_first_value(self, rows: list[dict], ds: pd.Series, where: str) -> np.ndarray:
        """Which history rows come, in time, before the first with a value: training reads a series from its first
        value on (:func:`mlcase.forecast.data.started`), so a request may send those steps, as the case's own rows
        hold them (wooldridge::phillips' last year's unemployment, `unem_1`, is null in 1948, the first year).
        A history with no value at all is refused."""
        null = pd.Series([r[Y] for r in rows], dtype="object").isna().to_numpy()
        probe = pd.DataFrame({ID: "request", DS: ds.to_numpy(), Y: np.where(null, np.nan, 0.0)})
        ordered = probe.sort_values(DS, kind="stable")
        before = ~started(ordered).reindex(probe.index).to_numpy()
        if before.all():
            raise DataError(f"{where}: {self._said(Y)} is null in every row", "send the series' past values")
        if not self.fill:   # a null target is refused, named by its row, as before
            return before
        # forecast.fill fills a gap, not the steps after the last value: training reads a series that ends before
        # the others as ending there (fpp3::prices' chicken, to 1993), as `mlcase score` reads a file's trailing empty
        # rows; chicken's nulls to 1997 were filled with its 1993 price and forecast from 1998 on
        return before | ended(ordered).reindex(probe.index).to_numpy()

    # ------------------------------------------------------------------ answer
    def answer(self, history: pd.DataFrame, future: pd.DataFrame | None, series: str,
               h: int | None = None, where: str | None = None) -> dict:
        """The forecast of one series: points with intervals, and which tier answered and why (``where``: the
        request's name in a message, ``request[1]``)."""
        at = f"{where}." if where else ""
        if h is None:
            h = self.horizon
        # 0 was read as "not given" (the whole horizon came back), 2.5 and True as 2 and 1
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 1 <= h <= self.horizon:
            raise DataError(f"{at}horizon: expected a whole number of steps from 1 to {self.horizon}, got {h!r}",
                            f"ask for at most {self.horizon} steps (the model's horizon), or leave it out for all")
        h = int(h)
        if len(history) < self.season:
            raise DataError(f"{at}history: {len(history)} steps, fewer than one season ({self.season}); even the seasonal-"
                            "naive fallback cannot forecast", f"send at least {self.min_history} past steps")
        if self.known and (future is None or len(future) < h):
            raise DataError(f"future: the known covariates {', '.join(self.known)} are needed for each of the {h} "
                            "steps", "send one object per future step with them")
        t0 = time.perf_counter()
        tier, reason, code, fc = "model", None, None, None
        if self.bundle is None:
            tier, reason, code = "seasonal_naive", "no model is loaded", "no_model"
        elif len(history) < self.min_history:
            tier, reason, code = "seasonal_naive", (f"the history has {len(history)} steps; the model needs "
                                                    f"{self.min_history}"), "short_history"
        else:
            job = self._pool.submit(self.bundle.model.forecast, history, future, h)
            try:
                fc = job.result(timeout=self.timeout_s)
                if len(fc) != h or not np.isfinite(fc[YHAT].to_numpy(dtype=float)).all():
                    raise ValueError("the model returned a forecast with missing or infinite values")
            except cf.TimeoutError:
                tier, reason, code, fc = ("seasonal_naive", f"the model took longer than {self.timeout_s:g} s", "timeout",
                                          None)
            except DataError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failing model hands over to seasonal naive
                tier, reason, code, fc = ("seasonal_naive", f"the model failed: {type(exc).__name__}: {str(exc)[:200]}",
                                          "error", None)
        naive = self.floor.forecast(history, None, h)
        if fc is None:
            fc = naive
        out = self._points(fc, naive, history, series, tier, reason, (time.perf_counter() - t0) * 1000)
        out["reason_code"] = code  # a short code for metrics (the reason itself is free text)
        return out

    def _points(self, fc, naive, history, series, tier, reason, ms) -> dict:
        cal = self.conformal if tier == "model" else (self.conformal.get("floor") or {})
        scales = self.conformal.get("scales") or {}
        scale = scales.get(series) or mase_scale(history.assign(**{ID: series}), self.season)[series]
        q = dict(zip(cal.get("steps") or [], cal.get("quantile") or [], strict=False))
        offsets = {int(k): v for k, v in (cal.get("quantile_offsets") or {}).items()}
        points = []
        for i, (ds, yhat) in enumerate(zip(fc[DS], fc[YHAT].to_numpy(dtype=float), strict=True), start=1):
            width = q.get(i)
            half = None if width is None else float(width) * scale
            points.append({"ds": pd.Timestamp(ds).isoformat(), "step": i, "forecast": float(yhat),
                           "lo": None if half is None else float(yhat - half),
                           "hi": None if half is None else float(yhat + half),
                           "quantile_forecast": float(yhat + offsets.get(i, 0.0) * scale) if offsets else None})
        return {"series": series, "tier": tier, "fallback": tier != "model", "reason": reason, "points": points,
                "seasonal_naive": [float(v) for v in naive[YHAT]], "scale": float(scale),
                "alpha": cal.get("alpha"), "quantile": cal.get("q"), "latency_ms": round(ms, 3),
                "model_name": self.bundle.name if self.bundle is not None else None,
                "model_version": self.bundle.version if self.bundle is not None else None}


def load_served(case, version: int | None = None) -> tuple[object | None, dict, list[str]]:
    """``(bundle, schema, notes)`` of what `mlcase serve` and `mlcase score` forecast with: the ``champion``
    (or ``version``); with no champion, the ``baseline`` where the decision found it better than seasonal naive
    (:func:`_proven_baseline`), else (the decision kept seasonal naive) no bundle, the schema seasonal naive
    needs (frequency, season, horizon) from the case's data, and a note saying so. A missing ``version`` is
    the registry's one-line :class:`~mlcase.errors.NotFoundError`."""
    from .. import tracking
    from ..errors import NotFoundError

    try:
        bundle = tracking.load_bundle(case, alias=None if version else "champion", version=version)
        return bundle, with_time_from(case, bundle.schema), []
    except NotFoundError as exc:
        if version is not None:
            raise
        baseline = _proven_baseline(case)
        if baseline is not None:
            return baseline, with_time_from(case, baseline.schema), [
                f"no champion is registered (the decision was INCONCLUSIVE): serving the best baseline, "
                f"{baseline.name} (version {baseline.version}), which beats seasonal naive with a 95% CI above zero"]
        return None, with_time_from(case, seasonal_naive_schema(case)), [
            f"no champion is registered ({exc.message}); seasonal naive answers every series"]


def with_time_from(case, schema: dict) -> dict:
    """``schema`` with ``time_from``: the SQL expression the case's drafted source makes its time column with
    (Year and Month columns: ``make_date(Year, Month, 1)``), read from the case as it is now, so a request's
    rows may come laid out as the raw file (wooldridge::cement's history got a 422 asking for 'date')."""
    from .data import drafted_column

    drafted = drafted_column(case)
    if not drafted or drafted["name"] != schema.get("time"):
        return schema
    return {**schema, "time_from": drafted["expr"]}


def _proven_baseline(case):
    """The registered ``baseline`` where the last decision left no champion but found it better than seasonal
    naive with a CI above zero (``serves_without_champion``: fpp3::us_change, where ridge's gain over the moving
    average was not settled, and seasonal naive, the worst of the three, answered); else None."""
    from .. import results, tracking
    from ..errors import NotFoundError

    name = ((results.load(case, "decision") or {}).get("evidence") or {}).get("serves_without_champion")
    if not name:
        return None
    try:
        bundle = tracking.load_bundle(case, alias="baseline")
    except NotFoundError:
        return None
    return bundle if bundle.name == name else None


def seasonal_naive_schema(case) -> dict:
    """What seasonal naive needs with no model (frequency, season, horizon), from the case's data, and its
    intervals as the run calibrated them on the backtests (``floor_conformal``; a NO_GO case's forecasts,
    "keep seasonal naive", came without any: datasets::UKDriverDeaths, fpp2::wmurders)."""
    from .. import results
    from .data import load_series
    from .stages import schema_of

    schema = schema_of(load_series(case), None)
    ev = results.load(case, "forecast_evaluation") or {}
    floor = (ev.get("conformal") or {}).get("seasonal_naive")
    if floor and int(ev.get("horizon") or 0) == int(schema["horizon"]):
        schema["floor_conformal"] = floor
    return schema

