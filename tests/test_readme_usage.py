"""The README's usage stays true: every `mlcase COMMAND [SUBCOMMAND] --option` it shows exists in the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from mlcase.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
GLOBAL = {"--debug", "--help"}   # accepted anywhere on the line (mlcase.cli.main)


def _commands_shown() -> list[tuple[str, str]]:
    """(code, the text after 'mlcase ') of every command line in a code span or block of the README."""
    text = README.read_text()
    code = re.findall(r"`([^`\n]+)`", text)
    code += [line for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S) for line in block.splitlines()]
    return [(c, m.group(1)) for c in code for m in re.finditer(r"\bmlcase ([a-z][^|;&`]*)", c)]


def test_every_command_and_option_the_readme_shows_exists():
    group = typer.main.get_command(app)
    shown, wrong = 0, []
    for code, line in _commands_shown():
        words = line.replace("\\", " ").split()
        cmd = group.commands.get(words[0])
        if cmd is None:
            wrong.append(f"no command '{words[0]}': {code}")
            continue
        rest = words[1:]
        if hasattr(cmd, "commands") and rest and re.fullmatch(r"[a-z][a-z-]*", rest[0]):
            if rest[0] not in cmd.commands:
                wrong.append(f"no subcommand '{words[0]} {rest[0]}': {code}")
                continue
            cmd, rest = cmd.commands[rest[0]], rest[1:]
        options = set(GLOBAL)
        for param in cmd.params:
            options.update(param.opts)
            options.update(param.secondary_opts)
        for word in rest:
            for opt in re.findall(r"^\[?(--?[a-zA-Z][\w-]*)", word):
                shown += 1
                if opt not in options:
                    wrong.append(f"'{opt}' is no option of 'mlcase {cmd.name}': {code}")
    assert shown > 80, shown   # the README shows its commands with their options
    assert not wrong, "\n".join(wrong)


def test_every_python_name_the_readme_shows_exists():
    """`mlcase.load_case`, `mlcase.score.score_file`, ...: importable as the README writes them."""
    import importlib

    names = sorted(set(re.findall(r"\bmlcase\.([a-z_]\w*(?:\.[a-z_]\w*)*)", README.read_text())))
    assert len(names) >= 8, names
    missing = []
    for name in names:
        parts = name.split(".")
        for cut in range(len(parts), -1, -1):   # the longest module prefix, then attributes
            try:
                obj = importlib.import_module(".".join(["mlcase", *parts[:cut]]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr, None)
            if obj is None:
                missing.append(name)
            break
    assert not missing, missing
