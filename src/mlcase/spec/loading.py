"""Reading ``case.yaml``: a bounded YAML loader, errors that name the path and line, and dumping."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from ..errors import SpecError
from .case import (
    CaseSpec,
)

# --------------------------------------------------------------------------- loading
#: case.yaml is read by these limits before anything else happens (see docs/security.md)
MAX_SPEC_BYTES = 1_000_000
MAX_SPEC_DEPTH = 50


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and nesting deeper than :data:`MAX_SPEC_DEPTH`.

    An alias (``*name``) makes one node stand for a whole subtree: nine nested aliases of
    nine items each are 387 million values, from 1.6 KB of YAML. case.yaml has no use for
    them, so they are refused while composing, before any of it is expanded.
    """

    def __init__(self, stream, source: str):
        super().__init__(stream)
        self._source, self._depth = source, 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise SpecError(f"{self._source} (line {event.start_mark.line + 1}): the YAML alias *{event.anchor} is "
                            "not allowed in a case spec", "write the value out instead of referring to an anchor")
        self._depth += 1
        try:
            if self._depth > MAX_SPEC_DEPTH:
                mark = self.peek_event().start_mark
                raise SpecError(f"{self._source} (line {mark.line + 1}): nested more than {MAX_SPEC_DEPTH} levels deep",
                                "a case spec is a few levels deep; fix the indentation or brackets there")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _index_lines(node: yaml.Node, source: str, path: tuple = (), out: dict | None = None) -> dict:
    """The line of every mapping key and sequence item; a key given twice in one mapping is a :class:`SpecError`."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode):
                if key in seen:
                    raise SpecError(f"{source}: the key '{_fmt_path(path + (key,))}' is given twice (lines {seen[key]} "
                                    f"and {line}); YAML would keep only the last", "keep one of them")
                seen[key] = line
            out[path + (key,)] = line
            _index_lines(value_node, source, path + (key,), out)
            out[path + (key,)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, source, path + (i,), out)
    return out


def _fmt_path(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    current: Any = model
    for p in loc:
        if isinstance(p, int) or current is None:
            continue
        field = getattr(current, "model_fields", {}).get(p)
        if field is None:
            return []
        ann = field.annotation
        current = None
        for cand in getattr(ann, "__args__", (ann,)):
            for c in getattr(cand, "__args__", (cand,)):
                if isinstance(c, type) and issubclass(c, BaseModel):
                    current = c
    return list(getattr(current, "model_fields", {})) if current else []


# the setting a lone value most likely meant, where a section was given as one value (`conformal: 0.1`)
_SHORTHAND = {"conformal": "alpha"}


def _explain(err: dict) -> tuple[tuple, str]:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in (
        "function-after[_number_or_expression(), union[float,str]]",))))
    # pydantic puts union member names in loc (e.g. 'float', 'str', 'RuleBaseline'); drop them
    loc = tuple(p for p in loc if p not in ("float", "str", "int", "bool", "RuleBaseline", "literal['auto']",
                                             "function-before[_duration(), float]",
                                             "function-before[_positive_duration(), float]"))
    typ, msg, got = err["type"], err["msg"], err.get("input")
    if typ == "extra_forbidden":
        key = loc[-1]
        allowed = _allowed_keys(CaseSpec, loc[:-1])
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
        return loc, f"unknown key '{key}'; {hint}"
    if typ == "missing":
        return loc, "is required; add it to case.yaml"
    if typ in ("value_error", "assertion_error"):
        return loc, msg.removeprefix("Value error, ")
    if typ.startswith("literal_error"):
        return loc, f"{msg.lower()}, got {got!r}"
    if typ in ("float_parsing", "float_type", "int_parsing", "int_type"):
        return loc, f"expected a number, got {got!r}"
    if typ == "finite_number":
        return loc, f"expected a finite number, got {got!r}; .nan and .inf are not amounts"
    if typ in ("model_type", "dict_type") and loc:
        # `conformal: 0.1` read "input should be a valid dictionary or instance of ConformalSpec": say what goes there
        allowed = _allowed_keys(CaseSpec, loc)
        if allowed:
            example = _SHORTHAND.get(str(loc[-1]))
            write = (f"write '{loc[-1]}: {{{example}: {got!r}}}'" if example and isinstance(got, (int, float))
                     and not isinstance(got, bool) else f"write its settings under '{loc[-1]}:', one 'key: value' a line")
            return loc, f"expected a mapping of its settings ({', '.join(allowed)}), got {got!r}; {write}"
    if typ == "string_pattern_mismatch":
        return loc, f"expected letters, digits, '-', '_' or '.', got {got!r}"
    return loc, f"{msg[0].lower() + msg[1:]}, got {got!r}"


def spec_from_dict(raw: Any, lines: dict | None = None, source: str = "case.yaml") -> CaseSpec:
    """Validate a dict as a :class:`CaseSpec`, turning pydantic errors into one :class:`SpecError`."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a YAML mapping at the top level, got {type(raw).__name__}",
                        "start from `mlcase init DATA --target COL`")
    try:
        return CaseSpec.model_validate(raw)
    except ValidationError as exc:
        messages = []
        seen = set()
        for err in exc.errors():
            loc, text = _explain(err)
            if not loc:  # a check across fields names the one it is about first ("split.test_size: ..."): use its line
                named = re.match(r"([a-z_]+(?:\.[a-z_]+)*): ", text)
                if named and named[1].split(".")[0] in CaseSpec.model_fields:
                    loc, text = tuple(named[1].split(".")), text[named.end():]
            key = (loc, text)
            if key in seen:
                continue
            seen.add(key)
            line = None
            if lines:
                probe = loc
                while probe and probe not in lines:
                    probe = probe[:-1]
                line = lines.get(probe) if probe else None  # no line for a key missing at the top
            where = _fmt_path(loc) + (f" (line {line})" if line else "")
            messages.append(f"{where}: {text}")
        # union errors repeat themselves per member; keep the most specific few
        messages = _dedupe_union(messages)
        first = messages[0]
        more = f" (and {len(messages) - 1} more: {'; '.join(messages[1:3])})" if len(messages) > 1 else ""
        raise SpecError(f"{source}: {first}{more}", None, errors=messages) from None


def _dedupe_union(messages: list[str]) -> list[str]:
    out: list[str] = []
    for m in messages:
        where = m.split(":", 1)[0]
        if any(o.split(":", 1)[0] == where for o in out):
            continue
        out.append(m)
    return out


def load_spec(path: str | Path) -> CaseSpec:
    """Read and validate a ``case.yaml`` (UTF-8, at most :data:`MAX_SPEC_BYTES`)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(f"{path.name} has {size:,} bytes, more than the {MAX_SPEC_BYTES:,} a case spec may have",
                            "a case spec is a page of YAML; keep data in data.source, not in case.yaml")
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"no case spec at {path}", "pass a case.yaml or its folder, or run `mlcase init DATA --target COL`") from None
    except IsADirectoryError:
        raise SpecError(f"{path} is a folder", "pass the case.yaml inside it") from None
    return parse_spec(decode_spec(data, path.name), source=path.name)


def decode_spec(data: bytes, source: str = "case.yaml") -> str:
    """The text of a case spec: UTF-8 (a byte-order mark is allowed), else a :class:`SpecError` naming the encoding."""
    head = data[:64]
    # UTF-16 without a mark: every other byte of ASCII text is NUL (b'n\x00a\x00'); other NULs are no text at all
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff")) or (
        len(head) > 3 and (head[1::2].count(0) == len(head[1::2]) or head[0::2].count(0) == len(head[0::2])))
    if utf16:
        raise SpecError(f"{source} is UTF-16 text, not UTF-8", "save it as UTF-8 (your editor's encoding menu)")
    if b"\x00" in data:
        raise SpecError(f"{source} is not text (it holds NUL bytes)", "pass the case.yaml, a YAML text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        byte = data[exc.start]
        try:
            data.decode("cp1252")
            guess = "Windows-1252 / Latin-1 (ISO-8859-1)"
        except UnicodeDecodeError:
            guess = "Latin-1 (ISO-8859-1)"
        char = bytes([byte]).decode("latin-1")
        raise SpecError(f"{source} is not UTF-8: byte 0x{byte:02x} on line {line} ({char!r} in {guess}, "
                        "which it looks like)", "save the file as UTF-8 (your editor's encoding menu)") from None


def parse_spec(text: str, source: str = "case.yaml") -> CaseSpec:
    """Validate the YAML text of a case spec: bounded (no aliases, size and depth capped), no duplicate keys."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{source} has {len(text):,} characters, more than the {MAX_SPEC_BYTES:,} a case spec may have",
                        "a case spec is a page of YAML; keep data in data.source, not in case.yaml")
    loader = _BoundedLoader(text, source)
    try:
        node = loader.get_single_node()
        lines = _index_lines(node, source) if node is not None else {}
        raw = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}{where}: not valid YAML: {problem}", "fix the indentation or quoting there") from None
    finally:
        loader.dispose()
    return spec_from_dict(raw, lines, source)


def dump_spec(spec: CaseSpec) -> str:
    """The spec as YAML (defaults included), loadable by :func:`parse_spec`."""
    data = spec.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

