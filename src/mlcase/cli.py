"""The ``mlcase`` command line: a thin Typer layer over the Python API.

Each command parses its arguments, calls one API function and prints. Errors
the user can fix (:class:`~mlcase.errors.MlcaseError`) print one line and exit
2; anything else is a bug and prints a short request for a report (the
traceback with ``--debug``). Human output goes to stderr, ``--json`` to stdout.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="mlcase",
    help="Decision-first applied ML: check the data, beat the baselines, decide GO/NO_GO, serve, monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state = {"debug": False}

CaseArg = Annotated[Path | None, typer.Argument(help="case.yaml or its folder (default ./case.yaml)", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


# the width of the console when stderr is not a terminal (a pipe, a CI log): tables are as wide as their
# content, so no name is cut or wrapped at 80 columns
PIPE_WIDTH = 100_000


def console(quiet: bool = False):
    """A Rich console on stderr (stdout stays clean for --json); unlimited width when not a terminal.

    Text from the data (names, values, paths) goes into its markup through :func:`mlcase.formats.markup_escape`.
    """
    from rich.console import Console

    # emoji=False: a name such as 'x:cat:y' or 'A:ok:B' (from the data) is printed as written, not as 'x🐈y'
    out = Console(stderr=True, quiet=quiet, highlight=False, soft_wrap=True, emoji=False)
    if not out.is_terminal:
        out = Console(stderr=True, quiet=quiet, highlight=False, soft_wrap=True, emoji=False, width=PIPE_WIDTH)
    return out


def emit_json(obj: Any) -> None:
    from .errors import redact_deep
    from .results import to_json

    sys.stdout.write(to_json(redact_deep(obj), indent=None) + "\n")
    sys.stdout.flush()


def load(case: Path | None):
    from .case import load_case

    return load_case(case)


def load_after_file(file: Path, case: Path | None, command: str):
    """The case of a command written ``FILE [CASE]`` (``mlcase label``, ``mlcase review import``).

    ``mlcase score`` reads ``CASE INPUT``; the same order here (``mlcase label CASE labels.csv``) read the labels
    file as the case spec and said "labels.csv: expected a YAML mapping at the top level ... start from `mlcase
    init`". Swapped arguments, a case folder or spec then a data file, are one line with the command to run.
    """
    import shlex

    from .errors import SpecError

    def is_case(p: Path) -> bool:
        return p.is_dir() or p.suffix.lower() in (".yaml", ".yml")

    if case is not None and is_case(file) and not is_case(case):
        raise SpecError(f"mlcase {command} takes the file first, then the case: {str(file)!r} is a case and "
                        f"{str(case)!r} is not", f"run `mlcase {command} {shlex.quote(str(case))} "
                                                 f"{shlex.quote(str(file))}`")
    return load(case)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
):
    _state["debug"] = debug or os.environ.get("MLCASE_DEBUG") == "1"
    if version:
        from . import __version__

        typer.echo(__version__)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, map errors to exit codes."""
    from .errors import MlcaseError, storage_error

    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere before a bare `--` (`mlcase run CASE --debug` as `mlcase --debug run CASE`)
    end = argv.index("--") if "--" in argv else len(argv)
    if "--debug" in argv[:end]:
        _state["debug"] = True
        argv = [a for a in argv[:end] if a != "--debug"] + argv[end:]
        argv.insert(0, "--debug")
    try:
        # with standalone_mode=False, click returns the code of a `typer.Exit(n)` instead of raising it
        code = app(args=argv, standalone_mode=False)
        return code if isinstance(code, int) else 0
    except MlcaseError as exc:
        _print_error(str(exc))
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort as exc:
        # click turns an EOFError into Abort, as for a prompt at the end of input; mlcase prompts for nothing, so
        # one is a library's (a gzipped file cut short): a bug to report, not Ctrl-C (exit 130, "aborted")
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, EOFError):
            return _internal(cause)
        _print_error("aborted")
        return 130
    except KeyboardInterrupt:
        _print_error("interrupted")
        return 130
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except OSError as exc:
        said = storage_error(exc)
        if said is None:
            return _internal(exc)
        _print_error(said)
        return 2
    except Exception as exc:  # a bug: short message, traceback behind --debug
        return _internal(exc)


def _internal(exc: BaseException) -> int:
    """A bug: a short message, the traceback behind --debug, exit 70 (click's usage errors show themselves)."""
    if hasattr(exc, "show") and hasattr(exc, "exit_code"):
        exc.show()
        return int(exc.exit_code)
    if _state["debug"]:
        import traceback

        traceback.print_exc()
        hint = "please report it with the traceback above"
    else:
        hint = "please report it with the output of the same command run with --debug (anywhere on the line)"
    _print_error(f"internal error ({type(exc).__name__}: {str(exc)[:200]}). This is a bug in mlcase: {hint}")
    return 70


def _print_error(msg: str) -> None:
    from .errors import redact_text

    sys.stderr.write(f"mlcase: error: {redact_text(msg)}\n")
    sys.stderr.flush()


def _run() -> None:  # console_scripts entry
    from .errors import RedactingStream

    # no URL credentials leave the process, whoever prints them (MLflow, a log handler, an error)
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    code = main()
    # The process ends here. Interpreter shutdown runs the cyclic GC over every object still
    # alive (a command leaves thousands of modules of MLflow, scikit-learn, SciPy...): 0.6-0.8 s
    # of `mlcase score`'s wall time on 2 cores (benchmarks/score_speed.py). Frozen objects are
    # skipped by those passes; atexit handlers, temporary folders, stream flushing and objects
    # freed by reference counting are unaffected (tests/test_score.py runs the console script).
    gc.freeze()
    sys.exit(code)


# register the command modules (each adds its commands to `app`)
from .commands import register_all  # noqa: E402

register_all(app)
