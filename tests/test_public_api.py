"""The public surface changes only on purpose, and importing mlcase stays light."""

from __future__ import annotations

import subprocess
import sys

import mlcase


def test_exported_names_are_pinned():
    assert sorted(mlcase.__all__) == ["Case", "CaseSpec", "MlcaseError", "__version__", "load_case", "run"]
    for name in mlcase.__all__:
        assert hasattr(mlcase, name)


HEAVY = ["mlflow", "shap", "fastapi", "dask", "plotly", "sklearn", "lightgbm", "xgboost", "optuna",
         "mapie", "statsmodels", "duckdb", "uvicorn", "fairlearn"]


def _imported_after(code: str) -> set[str]:
    probe = (f"{code}\nimport sys\n"
             f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(filter(None, out.stdout.strip().split(",")))


def test_import_mlcase_imports_no_heavy_library():
    assert _imported_after("import mlcase") == set()


def test_cli_help_imports_no_heavy_library():
    code = ("import sys\nfrom mlcase.cli import main\nsys.argv=['mlcase','--help']\n"
            "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n    main(['--help'])")
    assert _imported_after(code) == set()


def test_an_eof_error_from_a_library_is_an_internal_error_not_ctrl_c(capsys):
    """click turns an EOFError into Abort (a prompt at the end of input); mlcase prompts for nothing, and a
    gzip cut short made `mlcase check` say "aborted" with exit 130, as if the user had pressed Ctrl-C."""
    from mlcase import cli

    @cli.app.command("raise-eof-for-test", hidden=True)
    def _eof():
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    try:
        assert cli.main(["raise-eof-for-test"]) == 70
    finally:
        cli.app.registered_commands = [c for c in cli.app.registered_commands if c.name != "raise-eof-for-test"]
    err = capsys.readouterr().err
    assert "internal error (EOFError: Compressed file ended" in err and "aborted" not in err
