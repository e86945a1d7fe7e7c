"""``POST /rank``: order one group's candidate items (``task: ranking`` cases).

The body names the group (``data.group``: the user, query or session) and its candidate items,
each a record with the item column (``data.item``) and the model's features::

    {"group": 42, "items": [{"movieId": 318, "rating_count": 210, ...}, ...], "k": 10}

Items are validated like ``/predict`` records (the served model's schema; one message per
field and item, 422). The served model scores them; when it fails (an error, a non-finite
score, or no answer within ``serving.timeout_ms``) the next model tier of the chain
(``previous_champion``, ``baseline``) does, and when every model fails the items are ordered
by **popularity** (how often each item was relevant in the rows the model was fitted on,
stored in the bundle; items it never saw come last, in the order sent). The answer lists the
items best first with their scores and positions, and which tier ordered them.

Each item is logged as one prediction-log row: ``request_id`` ``<list_id>:<position>`` (the
list id is returned), ``inputs`` the item's record with the group, ``score``, ``prediction``
its position (1 = first), ``decision`` ``shown`` within the top ``k`` (else ``below_k``),
``arm`` ``model``, ``unit_id`` the group. Feedback per item goes to ``POST /labels`` with that
request id and the outcome (a click 1/0, a rating): :mod:`mlcase.monitor.ranking` turns it
into click-through by position and realized NDCG@k.
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoint's ``Request`` annotation at run time

import asyncio
import json
import math
import time
import uuid

import numpy as np

POPULARITY = "popularity"
#: the popularity fallback's tie-break: a billionth of a point per place in the request (the order sent)
TIE_STEP = 1e-9


def add_rank_routes(app, st, check_key, read_json, metrics) -> None:
    """Add ``POST /rank`` to ``app`` (``st`` is the app's :class:`~mlcase.serve.app.State`)."""
    from fastapi import Request
    from fastapi.responses import Response

    from .app import ErrorOut, InvalidRequest, Unavailable, _json_default, _now, commit_rows

    @app.post("/rank", summary="Order one group's candidate items (ranking cases)",
              responses={200: {"description": "The items, best first, with scores and positions"},
                         401: {"model": ErrorOut}, 404: {"model": ErrorOut, "description": "Not a ranking case"},
                         413: {"model": ErrorOut}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "type": "object", "required": ["group", "items"], "properties": {
                      "group": {"description": "The group (data.group): the user, query or session",
                                "anyOf": [{"type": "string"}, {"type": "number"}]},
                      "items": {"type": "array", "minItems": 1, "items": {"type": "object"},
                                "description": "Candidate items: the item column and the model's features"},
                      "k": {"type": "integer", "minimum": 1, "description": "The list length shown"}}}}}},
                  "security": [{"ApiKey": []}, {}]})
    async def rank(request: Request):
        t0 = time.perf_counter()
        check_key(request)
        p = st.predictor
        if p is None:
            raise Unavailable("the model is not loaded yet", "retry after /ready answers 200")
        primary = p.primary.bundle
        info = (primary.ranking if primary is not None else None) or {}
        if primary is None or primary.task != "ranking":  # the endpoint does not exist for this case: 404
            from ..errors import NotFoundError

            raise NotFoundError("POST /rank serves ranking cases; this case's model is "
                                f"{primary.task if primary is not None else 'not loaded'}", "use POST /predict")
        if request.query_params:  # ?k=3 was ignored: the list came back with the body's k (default 10)
            name = next(iter(request.query_params))
            raise InvalidRequest(f"query parameter '{name}': POST /rank reads no query parameters",
                                 'send it in the JSON body instead, e.g. {"group": ..., "items": [...], "k": 3}',
                                 issues=[{"record": None, "field": name,
                                          "message": "not a query parameter of /rank; send it in the body"}])
        payload = await read_json(request, fix='send a JSON object {"group": ..., "items": [{...}, ...], "k": 10}')
        group, items, k = _parse(payload, info, InvalidRequest)
        tiers = [t for t in p.tiers if t.kind == "model" and t.bundle is not None and t.bundle.task == "ranking"]
        records, issues = _validate(tiers[0], items, info, group)
        if issues:
            metrics.invalid.inc(len({i["record"] for i in issues}))
            first = "; ".join(f"item {i['record']} field '{i['field']}': {i['message']}" for i in issues[:3])
            more = f" (and {len(issues) - 3} more)" if len(issues) > 3 else ""
            raise InvalidRequest(f"{len(issues)} invalid field(s): {first}{more}", "fix the fields named in 'detail'",
                                 issues=issues)
        scores, tier, reasons = await _score(p, tiers, items, info, group, records)
        order = np.argsort(-scores, kind="stable")
        list_id = uuid.uuid4().hex
        item_col = info.get("item")
        out_items, rows = [], []
        latency_ms = (time.perf_counter() - t0) * 1000.0
        reason = "; ".join(reasons) if reasons else None
        version = tier.bundle.version if tier is not None else primary.version
        name = tier.bundle.name if tier is not None else POPULARITY
        tier_name = tier.name if tier is not None else POPULARITY
        prov = tier.provenance() if tier is not None else {}
        from .predlog import prediction_row
        from .release_routes import PROVENANCE_COLUMNS, provenance_values

        gcol = info.get("group") or "group"  # the group's column policy (hashed, dropped) applies to the unit too
        for pos, i in enumerate(order, start=1):
            rid = f"{list_id}:{pos}"
            item_id = items[i].get(item_col) if item_col else int(i)
            decision = "shown" if pos <= k else "below_k"
            out_items.append({"item": item_id, "position": pos, "score": float(scores[i]), "request_id": rid,
                              "shown": pos <= k})
            rec = {**items[i], gcol: group}
            rows.append(prediction_row(
                request_id=rid, ts=_now(), model_version=version, model_name=name, tier=tier_name,
                fallback=int(bool(reasons)), reason=reason, inputs=_dumps(st.policy.inputs(rec)),
                score=float(scores[i]), prediction=str(pos), decision=decision, latency_ms=latency_ms, arm="model",
                unit_id=st.policy.unit(str(group), column=gcol), audit=0,
                sampling_probability=0.0, model_decision=decision, log_key_id=st.policy.key_id,
                **dict(zip(PROVENANCE_COLUMNS, provenance_values(version, prov), strict=True))))
        await commit_rows(st, rows, "list")
        metrics.predictions.labels(tier_name, "shown").inc(min(k, len(order)))   # counted once the log holds them
        if reasons:
            metrics.fallbacks.labels(tier_name, "error").inc()
        body = {"list_id": list_id, "group": group, "k": k, "tier": tier_name, "fallback": bool(reasons),
                "reason": reason, "model_version": version, "items": out_items}
        return Response(json.dumps(body, default=_json_default, allow_nan=False), media_type="application/json")


def _dumps(v) -> str:
    from .predlog import to_json

    return to_json(v)


def _parse(payload, info: dict, InvalidRequest):
    """``(group, items, k)`` from the body, or a 422 naming the field."""
    group_col = info.get("group") or "group"
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object {group, items[, k]}",
                             'send e.g. {"group": 42, "items": [{...}, {...}]}',
                             issues=[{"record": None, "field": "(body)", "message": "expected an object"}])
    extra = sorted(set(payload) - {"group", group_col, "items", "k"})
    group = payload.get("group", payload.get(group_col))
    items = payload.get("items")
    k = payload.get("k", info.get("k") or 10)
    problems = []
    if extra:
        problems.append(("(body)", f"unknown field(s) {', '.join(extra)}; the fields are group, items, k"))
    if group is None:
        problems.append(("group", f"is required: the {group_col} the list is for (a string or a number)"))
    elif wrong := _not_an_id(group):
        # [1, 2] was told "is required" though it was sent; NaN, Infinity and 1e400 parse as floats, the log's JSON
        # cannot hold them, and the list was a 500; "" was served and logged as a list of no group, where the batch
        # path reads a blank group as none (decision 'no_group') and the run refuses rows without one
        finite = "finite " if isinstance(group, float) else ""
        problems.append(("group", f"expected the {group_col} the list is for as a string or a {finite}number, "
                                  f"got {wrong}"))
    if not isinstance(items, list) or not items or not all(isinstance(x, dict) for x in items):
        problems.append(("items", "expected a non-empty array of objects (the candidate items)"))
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        problems.append(("k", f"expected an integer >= 1, got {k!r}"))
    if problems:
        raise InvalidRequest(f"{len(problems)} invalid field(s) in the list: field '{problems[0][0]}': {problems[0][1]}",
                             'send {"group": ..., "items": [{...}, ...], "k": 10}',
                             issues=[{"record": None, "field": f, "message": m} for f, m in problems])
    return group, items, int(k)


def _not_an_id(v) -> str | None:
    """What a sent group or item id is, where it cannot be one (``None`` where it can, or was not sent): a boolean,
    an object, an array, a blank string, a number that is not finite."""
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, str) and not v.strip():
        return "a blank string"
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    return None


def _records_for(tier, items: list[dict], info: dict, group):
    """Each item as the tier's record: its features (the group and item columns only where the model reads them)."""
    feats = set(tier.bundle.features)
    extra = {info.get("group"), info.get("item")} - {None}
    out = []
    for it in items:
        rec = {k: v for k, v in it.items() if k not in extra or k in feats}
        if info.get("group") in feats:
            rec[info["group"]] = group
        out.append(rec)
    return out


def _validate(tier, items: list[dict], info: dict, group) -> tuple[list[dict], list[dict]]:
    records, issues = tier.spec.validate_records(_records_for(tier, items, info, group))
    found = [i.to_dict() for i in issues]
    item_col = info.get("item")
    if item_col:
        for n, it in enumerate(items):
            v = it.get(item_col)
            wrong = _not_an_id(v)
            if v is None or wrong:
                # one issue per field: where the model also reads the item id (wooldridge::school93_98's schid)
                # the schema's own "is required" for it said the same thing again, 16 issues for 8 items; an id
                # sent as ["x"] was told "is required" too, though it was sent (Ecdat::Yogurt's brand)
                found = [f for f in found if not (f["record"] == n and f["field"] == item_col)]
                msg = (f"is required: the item id ({item_col}) of each candidate" if v is None else
                       f"expected the item id ({item_col}) as a string or a number, got {wrong}")
                found.append({"record": n, "field": item_col, "message": msg})
        # an item twice in one list: refused, not de-duplicated. It would be shown (and logged) at two positions, a
        # click on either labels one of two request ids, and the list's NDCG counts its gain twice; which copy's
        # features to keep is the client's to say. `mlcase run` reports an item twice in one list as a data finding
        # (checks), and Ecdat::Yogurt's list [dannon, yoplait, dannon] was served as three brands
        from ..rankers import _keys

        sent = [(n, it.get(item_col)) for n, it in enumerate(items)
                if it.get(item_col) is not None and not _not_an_id(it.get(item_col))]
        first: dict[str, int] = {}
        for (n, v), key in zip(sent, _keys([v for _, v in sent]), strict=True):
            if key in first:
                found.append({"record": n, "field": item_col,
                              "message": f"the item {v!r} is also item {first[key]} of the list for {group!r}: "
                                         "send each item once"})
            else:
                first[key] = n
    return records, sorted(found, key=lambda d: (d["record"] if d["record"] is not None else -1))


async def _score(p, tiers, items: list[dict], info: dict, group, primary_records: list[dict]):
    """Scores from the first model tier that answers in time with finite scores; else popularity."""
    reasons = []
    for n, tier in enumerate(tiers):
        records = primary_records
        if n:
            records, issues = tier.spec.validate_records(_records_for(tier, items, info, group))
            if issues:
                reasons.append(f"{tier.name}: invalid: {issues[0].field}: {issues[0].message}")
                continue
        fut = p._pool.submit(tier.scores, records)
        try:
            s = await asyncio.wait_for(asyncio.wrap_future(fut), timeout=p.timeout_s)
        except TimeoutError:
            reasons.append(f"{tier.name}: timeout: no answer within {1000 * (p.timeout_s or 0):.0f} ms")
            continue
        except Exception as exc:  # noqa: BLE001 - the model failed; the next tier orders the list
            reasons.append(f"{tier.name}: error: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        s = np.asarray(s, dtype="float64")
        if s.shape != (len(items),) or not np.all(np.isfinite(s)):
            reasons.append(f"{tier.name}: error: the model returned non-finite or too few scores")
            continue
        return s, tier, reasons
    return popularity_scores(items, info), None, reasons


def popularity_scores(items: list[dict], info: dict) -> np.ndarray:
    """Each item's training popularity (``bundle.ranking["popularity"]``); unseen items and a case without
    ``data.item`` keep the order sent (a small descending score)."""
    from ..rankers import _keys

    pop = info.get("popularity") or {}
    n = len(items)
    keep = -np.arange(n, dtype=float) * TIE_STEP  # ties and unseen items: the order sent
    item_col = info.get("item")
    if not item_col or not pop:
        return keep
    keys = _keys([it.get(item_col) for it in items])
    return np.array([pop.get(k, 0.0) for k in keys], dtype=float) + keep

