"""The :class:`Case`: a spec plus the folder it lives in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import SpecError
from .spec import CaseSpec, load_spec

# MLflow's set_tracking_uri() writes MLFLOW_TRACKING_URI into os.environ, so the
# user's own setting is read once, before mlcase ever calls MLflow.
_USER_TRACKING_URI = __import__("os").environ.get("MLFLOW_TRACKING_URI")


@dataclass
class Case:
    """A decision case: ``case.yaml`` and the folder mlcase writes beside it.

    Examples
    --------
    >>> case = load_case("examples/telco-churn")       # doctest: +SKIP
    >>> case.spec.task                                  # doctest: +SKIP
    'binary'
    """

    spec: CaseSpec
    root: Path
    path: Path | None = None
    overrides: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:  # the dataclass repr printed every field of the spec: thousands of characters
        return f"Case(name={self.name!r}, task={self.spec.task!r}, root={str(self.root)!r})"

    # the files mlcase writes beside case.yaml ---------------------------------
    @property
    def work_dir(self) -> Path:
        """``<case>/.mlcase``: stage results (JSON) the report is rebuilt from."""
        return self.root / ".mlcase"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def tracking_uri(self) -> str:
        if self.spec.tracking_uri:
            return self.spec.tracking_uri
        if _USER_TRACKING_URI:
            return _USER_TRACKING_URI
        return f"sqlite:///{(self.root / 'mlflow.db').resolve()}"

    @property
    def uses_embedded_store(self) -> bool:
        return not self.spec.tracking_uri and not _USER_TRACKING_URI

    @property
    def artifact_location(self) -> str:
        return (self.root / "mlartifacts").resolve().as_uri()

    def resolve(self, relative: str | Path) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.root / p


def path_arg(value, what: str, fix: str = "pass a path (a str or pathlib.Path)") -> Path:
    """A file or folder a caller of the Python API named, as a :class:`Path`; anything else (a DataFrame where
    the function reads a file, a number) is a :class:`SpecError` naming ``what``, not pathlib's ``TypeError``."""
    import os

    if isinstance(value, str | os.PathLike) and str(value).strip():
        return Path(value)
    got = "an empty path" if isinstance(value, str | os.PathLike) else f"a {type(value).__name__}"
    raise SpecError(f"{what}: got {got}, not a path", fix)


def find_case_file(case: str | Path | None = None) -> Path:
    """A ``case.yaml`` path from a file, a folder holding one, or ``./case.yaml``."""
    p = (path_arg(case, "case", "pass a Case (mlcase.load_case(path)), or the path of a case.yaml or its folder")
         if case is not None else Path("case.yaml"))  # `if case` asked a DataFrame its truth value: pandas' ValueError
    if p.is_dir():
        for name in ("case.yaml", "case.yml"):
            if (p / name).is_file():
                return p / name
        raise SpecError(f"no case.yaml in {p}", "pass the case file, or create one with `mlcase init DATA --target COL`")
    if not p.exists():
        raise SpecError(f"no case spec at {p}", "pass a case.yaml or its folder, or create one with `mlcase init DATA --target COL`")
    return p


def load_case(case: str | Path | Case | None = None) -> Case:
    """Load a case from a ``case.yaml`` path or the folder holding one (default ``./case.yaml``); a :class:`Case`
    (or a case-like object with ``spec`` and ``root``: tests, wrappers) is returned as it is. Anything else is a
    :class:`SpecError` naming ``case``."""
    if isinstance(case, Case) or (hasattr(case, "spec") and hasattr(case, "root")):
        return case
    path = find_case_file(case)
    spec = load_spec(path)
    return Case(spec=spec, root=path.resolve().parent, path=path.resolve())


def as_case(case) -> Case:
    """``case`` as a :class:`Case` (see :func:`load_case`), where the API function has no default case: ``None`` is
    a :class:`SpecError`, not ``./case.yaml``. What the functions that take a case call first, so
    ``monitor("examples/telco-churn")`` works as ``mlcase.run`` does."""
    if case is None:
        raise SpecError("case: got None, not a case", "pass mlcase.load_case(path) or the path of a case.yaml")
    return load_case(case)


def case_from_spec(spec: CaseSpec | dict, root: str | Path) -> Case:
    """A case built in code (notebooks, tests); ``root`` is where its files go."""
    from .spec import spec_from_dict

    if isinstance(spec, dict):
        spec = spec_from_dict(spec)
    root = Path(root).resolve()
    return Case(spec=spec, root=root, path=None)
