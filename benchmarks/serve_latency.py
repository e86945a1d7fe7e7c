"""Single-record serving latency: `mlcase serve` against MLflow's own scoring server.

Both servers serve the same registered champion (a ColumnTransformer + LightGBM pipeline on the
Telco churn data, with a conformal calibration) on 127.0.0.1, one worker process each. The same
bounded load generator sends the same single-record requests to each: first sequentially, then
from a fixed number of concurrent clients; it prints p50/p99 latency and throughput side by side
with their ratios, and the in-process floor: the pipeline's ``predict_proba`` on one row, the
bare LightGBM booster on the same (encoded) row, and mlcase's fast path (encode + booster).

``mlcase serve`` answers with validation, the fallback chain, the conformal set and the
prediction durably committed to its WAL log before the response; ``mlflow models serve
--env-manager local`` answers ``predict_proba`` for a ``dataframe_records`` body.

Usage::

    python benchmarks/serve_latency.py [--case PATH] [--requests 2000] [--clients 8] [--json out.json]

Without ``--case`` a temporary case is built and its champion registered. Targets: mlcase p50
<= 2 ms end to end and throughput >= 5x MLflow's on the same model and machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_case(folder: Path):
    """A churn case with a calibrated LightGBM champion registered in its own store."""
    from mlcase.conformal import calibrate
    from tests.serving_case import bundle, make_case, register

    case, ds = make_case(folder, n=None)
    champion = bundle(ds, threshold=0.3)
    calibrate(champion, ds.X_valid, ds.y_valid, alpha=0.1)
    version = register(case, champion, aliases=["champion"])
    return case, ds, version


def wait(port: int, path: str, proc, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"server on {port} not ready")


def sequential(port: int, path: str, bodies: list[bytes], n: int, warm: int = 200) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    lat = []
    for i in range(warm + n):
        body = bodies[i % len(bodies)]
        t0 = time.perf_counter()
        c.request("POST", path, body, headers)
        r = c.getresponse()
        r.read()
        dt = time.perf_counter() - t0
        if r.status != 200:
            raise RuntimeError(f"{path} answered {r.status}")
        if i >= warm:
            lat.append(dt)
    total = sum(lat)
    return summarise(lat, total)


def concurrent(port: int, path: str, bodies: list[bytes], n: int, clients: int) -> dict:
    per = n // clients
    lat: list[float] = []
    lock = threading.Lock()
    errors = []
    barrier = threading.Barrier(clients + 1)

    def run(k: int):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        barrier.wait()
        for i in range(per):
            body = bodies[(k * per + i) % len(bodies)]
            t0 = time.perf_counter()
            c.request("POST", path, body, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            mine.append(time.perf_counter() - t0)
            if r.status != 200:
                errors.append(r.status)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{path}: {len(errors)} non-200 answers ({errors[:3]})")
    return summarise(lat, wall)


def summarise(lat: list[float], wall: float) -> dict:
    s = sorted(lat)
    return {"n": len(s), "p50_ms": 1000 * s[len(s) // 2], "p99_ms": 1000 * s[min(len(s) - 1, int(0.99 * len(s)))],
            "mean_ms": 1000 * statistics.fmean(s), "throughput_rps": len(s) / wall}


def floor(case, ds, reps: int = 2000) -> dict:
    """In-process: pipeline predict_proba on one row, the bare booster on the same row, the fast path."""
    from mlcase import tracking
    from mlcase.serve.fallback import pin_threads
    from mlcase.serve.fastpath import compile_fastpath
    from mlcase.serve.schema import RecordSpec
    from tests.serving_case import records

    b = tracking.load_bundle(case, alias="champion")
    pin_threads(b.model)
    spec = RecordSpec(b.schema, b.features)
    fast = compile_fastpath(b.model, b.features, spec, b.task)
    rec = records(ds, n=1)[0]
    frame = spec.frame([rec])
    x = fast.encode(rec)
    booster = b.model[-1].booster_

    def timeit(fn, n):
        for _ in range(min(200, n)):
            fn()
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return 1e6 * sorted(out)[len(out) // 2]

    return {"pipeline_predict_proba_us": timeit(lambda: b.model.predict_proba(frame), reps // 4),
            "bare_booster_us": timeit(lambda: booster.predict(x, num_threads=1), reps),
            "fast_path_us": timeit(lambda: fast.scores(rec), reps),
            "validation_us": timeit(lambda: spec.validate_records([rec]), reps)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=Path, help="a case whose champion to serve (default: build one)")
    ap.add_argument("--requests", type=int, default=2000, help="requests per phase and server")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients in the second phase")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    tmp = None
    if args.case:
        from mlcase import tracking
        from mlcase.case import load_case
        from mlcase.data import prepare

        case = load_case(args.case)
        ds = prepare(case)
        version = tracking.alias_version(case, "champion")
    else:
        tmp = Path(tempfile.mkdtemp(prefix="mlcase-bench-"))
        print("building a churn case and registering its champion ...", flush=True)
        case, ds, version = build_case(tmp / "churn")
    from tests.serving_case import records

    recs = records(ds, n=500)
    mlcase_bodies = [json.dumps(r).encode() for r in recs]
    mlflow_bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in recs]
    procs = []
    results: dict = {"model_version": version, "cpus": os.cpu_count(), "load_avg_before": os.getloadavg()}
    try:
        p1, p2 = free_port(), free_port()
        bindir = str(Path(sys.executable).parent)  # `mlflow models serve` execs `uvicorn` from PATH
        env = {**os.environ, "MLFLOW_TRACKING_URI": case.tracking_uri,
               "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
        env.pop("MLCASE_API_KEY", None)
        mlcase_proc = subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(case.root),
                                        "--port", str(p1)], env=env, stdout=subprocess.DEVNULL)
        procs.append(mlcase_proc)
        mlflow_env = {**env, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
        mlflow_proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
                                        f"models:/{case.name}/{version}", "--env-manager", "local", "-h",
                                        "127.0.0.1", "-p", str(p2), "-w", "1"], env=mlflow_env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(mlflow_proc)
        wait(p1, "/ready", mlcase_proc)
        wait(p2, "/ping", mlflow_proc)
        print("both servers ready; measuring ...", flush=True)
        results["mlcase_sequential"] = sequential(p1, "/predict", mlcase_bodies, args.requests)
        results["mlflow_sequential"] = sequential(p2, "/invocations", mlflow_bodies, args.requests)
        results["mlcase_concurrent"] = concurrent(p1, "/predict", mlcase_bodies, args.requests, args.clients)
        results["mlflow_concurrent"] = concurrent(p2, "/invocations", mlflow_bodies, args.requests, args.clients)
        results["floor"] = floor(case, ds)
        results["load_avg_after"] = os.getloadavg()
        # the mlcase answers really carried conformal sets and were logged
        c = http.client.HTTPConnection("127.0.0.1", p1)
        c.request("POST", "/predict", mlcase_bodies[0], {"Content-Type": "application/json"})
        answer = json.loads(c.getresponse().read())["predictions"][0]
        c.request("GET", "/ready")
        ready = json.loads(c.getresponse().read())
        results["checks"] = {"conformal_set": answer["conformal"], "logged_rows": ready["log"]["written"],
                             "log_failed": ready["log"]["failed"], "fast_path": ready["model"]["fast_path"]}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    report(results, args.clients)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def report(r: dict, clients: int) -> None:
    print()
    print(f"{'':28}{'mlcase serve':>14}{'mlflow serve':>14}{'ratio':>10}")
    for phase in ("sequential", "concurrent"):
        a, b = r[f"mlcase_{phase}"], r[f"mlflow_{phase}"]
        label = phase if phase == "sequential" else f"{clients} clients"
        print(f"{label + ' p50 (ms)':28}{a['p50_ms']:14.2f}{b['p50_ms']:14.2f}{b['p50_ms'] / a['p50_ms']:9.1f}x")
        print(f"{label + ' p99 (ms)':28}{a['p99_ms']:14.2f}{b['p99_ms']:14.2f}{b['p99_ms'] / a['p99_ms']:9.1f}x")
        print(f"{label + ' throughput (req/s)':28}{a['throughput_rps']:14.0f}{b['throughput_rps']:14.0f}"
              f"{a['throughput_rps'] / b['throughput_rps']:9.1f}x")
    f = r["floor"]
    print()
    print("in-process floor (one row, median):")
    print(f"  pipeline predict_proba   {f['pipeline_predict_proba_us']:10.1f} us")
    print(f"  bare LightGBM booster    {f['bare_booster_us']:10.1f} us")
    print(f"  mlcase fast path         {f['fast_path_us']:10.1f} us  (encode + booster)")
    print(f"  record validation        {f['validation_us']:10.1f} us  (pydantic model from the schema)")
    print(f"checks: {r['checks']}; cpus {r['cpus']}, load average before {r['load_avg_before'][0]:.2f}, "
          f"after {r['load_avg_after'][0]:.2f}")
    p50 = r["mlcase_sequential"]["p50_ms"]
    ratio = r["mlcase_concurrent"]["throughput_rps"] / r["mlflow_concurrent"]["throughput_rps"]
    print(f"targets: p50 <= 2 ms: {'met' if p50 <= 2 else 'MISSED'} ({p50:.2f} ms); "
          f"throughput >= 5x MLflow ({clients} clients): {'met' if ratio >= 5 else 'MISSED'} ({ratio:.1f}x)")


if __name__ == "__main__":
    sys.exit(main())
