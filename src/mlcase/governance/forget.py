"""Erasure: ``mlcase forget CASE --subject ID`` removes a person's rows from every store of the case.

The subject is a ``data.id`` value. Its rows are found in every store (:func:`stores.stores_for`)
by its unit (raw, or its keyed hash when the log keeps ``data.id`` hashed) and by the request ids
the stores hold for it; then each store erases them in one atomic step, the prediction log last
(it is where request ids are found). A receipt goes to ``<case>/.mlcase/governance/erasures/``:
when, how many rows, from which stores, and what erasure cannot reach. It holds no identifier:
not the subject, not its hash, not a request id.

Killed at any point, the stores stay consistent (each step is a transaction or an atomic rename)
and the journal (``pending-<key>.json``, named by a keyed hash of the subject under its own
context) remembers what was done: running the same ``forget`` again finishes the job and writes
one receipt counting the rows of both runs.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from .failpoints import failpoint
from .stores import Subject, check_files, check_log, governance_dir, stores_for

ERASURES_DIR = "erasures"
RECEIPT_VERSION = 1
NOT_REACHED = ("the training data (data.source) and the models registered from it are not changed: remove the "
               "subject there and re-run `mlcase run` if the model must forget them too",
               "copies outside the case (exports sent elsewhere, backups, a shared MLflow server) are not reached")


def forget(case, subject, log: str | None = None, files: list | None = None) -> dict:
    """Erase a subject's rows from the prediction log, its labels, the review and label files, and
    every registered store; return the receipt.

    Parameters
    ----------
    case : Case, str or Path
        The case, or the path of its ``case.yaml`` (or of the folder holding it).
    subject : str or int
        One ``data.id`` value (one subject per call).
    log : str or Path, optional
        The prediction log (default ``serving.log`` or ``<case>/predictions.db``).
    files : path or list of path, optional
        More CSV/Parquet files of records to erase from (with ``unit_id`` or the ``data.id`` column,
        or ``request_id``).

    Returns
    -------
    dict
        The receipt: ``erasure_id``, ``started_at``, ``finished_at``, ``runs``, ``stores`` (store,
        location, rows), ``rows``, ``notes``, ``path``.
    """
    from ..case import as_case
    from ..lock import case_lock
    from ..serve.predlog import now_iso

    # every argument is checked before the journal is written: a refusal leaves nothing to resume
    case = as_case(case)
    subj = Subject(case, subject)
    log = check_log(log)
    files = check_files(files)
    notes = list(NOT_REACHED) + _policy_notes(case, subj)
    gdir = governance_dir(case)
    with case_lock(case, "forget"):
        gdir.mkdir(parents=True, exist_ok=True)
        paths = [gdir / f"pending-{k}.json" for k in subj.journal_keys(case)]
        journal_path = next((p for p in paths if p.is_file()), paths[0])
        journal = _read(journal_path) or {"erasure_id": uuid.uuid4().hex, "started_at": now_iso(), "runs": 0,
                                          "stores": {}}
        journal["runs"] += 1
        _write(journal_path, journal)
        stores = stores_for(case, log, files)
        ids: set[str] = set()
        for st in stores:
            ids |= st.find(subj)
        for st in stores:
            key = f"{st.name}|{st.location}"
            entry = journal["stores"].setdefault(key, {"store": st.name, "location": st.location, "planned": None,
                                                      "rows": 0, "done": False})
            if entry["done"]:
                continue
            if entry["planned"] is None:  # counted before the first attempt, so a kill after commit still counts
                entry["planned"] = st.erase(subj, ids, dry_run=True)
                _write(journal_path, journal)
            n = st.erase(subj, ids)
            resumed = journal["runs"] > 1
            entry["rows"] = max(entry["planned"], n) if resumed else n
            entry["done"] = True
            _write(journal_path, journal)
            failpoint("forget:between-stores")
        other_keys = _other_keys(stores, subj)
        notes = _other_key_notes(other_keys, subj) + notes + _scratch_notes(case) + _near_misses(stores, subj)
        receipt = {"receipt_version": RECEIPT_VERSION, "kind": "erasure", "erasure_id": journal["erasure_id"],
                   "started_at": journal["started_at"], "finished_at": now_iso(), "runs": journal["runs"],
                   "subject": "not recorded (a receipt holds no identifier)",
                   "stores": [{k: e[k] for k in ("store", "location", "rows")} for e in journal["stores"].values()],
                   "notes": notes,
                   # rows hashed under another log key, per store: not searchable for this subject (see notes)
                   "other_key_rows": {f"{s.name}|{s.location}": n for s, n in other_keys}}
        receipt["rows"] = sum(s["rows"] for s in receipt["stores"])
        out = gdir / ERASURES_DIR / f"{receipt['finished_at'].replace(':', '').replace('-', '')[:15]}Z-" \
                                    f"{receipt['erasure_id'][:8]}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        _write(out, receipt)
        journal_path.unlink(missing_ok=True)
    return {**receipt, "path": str(out)}


def _other_keys(stores, subj) -> list[tuple]:
    """``(store, {key id: rows})`` for each store holding rows hashed under a log key other than this machine's."""
    out = []
    for st in stores:
        count = getattr(st, "other_keys", None)
        if count is None:
            continue
        found = count(subj.key_id)
        if found:
            out.append((st, found))
    return out


def _other_key_notes(other_keys: list[tuple], subj) -> list[str]:
    """Say that rows hashed under another log key were not searched: the erasure is not known to be complete."""
    if not other_keys:
        return []
    keys = sorted({k for _, found in other_keys for k in found})
    where = "; ".join(f"{st.name}: {sum(found.values()):,} row(s) under key {', '.join(sorted(found))}"
                      for st, found in other_keys)
    other = "another log key" if len(keys) == 1 else f"{len(keys)} other log keys"
    return [f"NOT A COMPLETE ERASURE: the log holds rows whose data.id was hashed under {other} than this "
            f"machine's (key {subj.key_id}): {where}; the subject's rows among them cannot be found by value, so "
            "they were not erased. Run forget again with MLCASE_LOG_KEY set to each key the servers used, and keep "
            "one MLCASE_LOG_KEY for every server of the case"]


def _near_misses(stores, subj) -> list[str]:
    """Say how many raw rows left in the prediction log have an id that differs from the subject only in letter
    case (another unit, unless it is an e-mail or a UUID, which were erased): never the id itself."""
    from .stores import PredictionLogStore

    if subj.fold is not None or subj.raw.lower() == subj.raw.upper():
        return []
    n = 0
    for st in stores:
        if not isinstance(st, PredictionLogStore):
            continue
        b = st._backend()
        if b is None:
            continue
        try:
            n += len(b.read_frame("SELECT request_id FROM predictions WHERE lower(unit_id) = :fold",
                                  {"fold": subj.raw.lower()}))
        finally:
            b.close()
    if not n:
        return []
    return [f"{n} row(s) left in the prediction log have a data.id that differs from the subject only in letter "
            "case: they are another unit and were not erased; if they are the same person, run forget with that "
            "spelling"]


def _scratch_notes(case) -> list[str]:
    """Delete the scratch folders killed commands left (copies of the log or the data: :mod:`mlcase.scratch`) and
    say what a command still running holds."""
    from ..scratch import sweep

    swept = sweep(case)
    out = []
    if swept["removed"]:
        out.append(f"{swept['removed']} scratch folder(s) that killed commands left in .mlcase/scratch (copies of "
                   "the log or the data) were deleted")
    if swept["live"]:
        out.append(f"{swept['live']} command(s) still running hold a scratch copy in .mlcase/scratch; it is deleted "
                   "when they end: run `mlcase forget` again after them to be sure")
    return out


def _policy_notes(case, subj) -> list[str]:
    from .policy import DROP, HASHED, LogPolicy

    spec = case.spec
    how = LogPolicy.from_spec(spec).of(spec.data.id) if spec.data.id else None
    if how == DROP:
        return [f"data.id '{spec.data.id}' is dropped from the prediction log (serving.log_inputs), so the log "
                "cannot tell whose rows are whose; only files that carry it were searched"]
    notes = ["requests that did not carry data.id (or carried it as a JSON number with a point or an exponent past "
             "2**53, which a float cannot keep exact) were logged without a unit and cannot be found by subject"]
    if how == HASHED:
        notes.append(f"data.id is logged hashed: the subject was looked for in {len(subj.forms)} spelling(s) "
                     "(the one this version logs: NFC, a UUID or an e-mail in lower case; and the text as given, which "
                     "older versions logged); a hash of another spelling (other letter case of a text id, other "
                     "leading zeros, a number rounded by the client) cannot be found: run forget with that spelling")
    else:
        notes.append("an id spelled otherwise (other letter case of a text id that is not an e-mail or a UUID, other "
                     "leading zeros, a number rounded by the client) is another unit: run forget with that spelling")
    return notes


def receipts(case) -> list[dict]:
    """Every erasure receipt of the case, oldest first."""
    folder = governance_dir(case) / ERASURES_DIR
    return [r for p in sorted(folder.glob("*.json")) if (r := _read(p))] if folder.is_dir() else []


def pending(case) -> int:
    """Erasures started and not finished (a rerun with the same subject finishes each)."""
    gdir = governance_dir(case)
    return len(list(gdir.glob("pending-*.json"))) if gdir.is_dir() else 0


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
