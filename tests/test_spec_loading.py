"""Bounded loading of case.yaml: aliases, size, depth, duplicate keys, encoding, and no secret in it."""

from __future__ import annotations

import tracemalloc

import pytest

from mlcase.errors import SpecError
from mlcase.spec import MAX_SPEC_BYTES, decode_spec, load_spec, parse_spec

from .test_spec import MINIMAL


def _bomb() -> str:
    """The classic 'billion laughs' in YAML, 1.6 KB: nine levels of nine aliases, 387 million strings."""
    lol = '"' + "lol-" * 30 + '"'
    lines = ["a: &a [" + ", ".join([lol] * 9) + "]"]
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = name
    return MINIMAL + "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_one_line_with_little_memory():
    text = _bomb()
    assert 1400 <= len(text.encode()) <= 1800
    tracemalloc.start()
    try:
        with pytest.raises(SpecError) as err:
            parse_spec(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value) == ("case.yaml (line 8): the YAML alias *a is not allowed in a case spec; write the value "
                              "out instead of referring to an anchor")
    assert peak < 5 * 2**20  # it was 3 GB and a MemoryError (exit 70)


def test_the_alias_bomb_through_the_cli_exits_2_with_one_line(tmp_path, capsys):
    from mlcase.cli import main

    (tmp_path / "case.yaml").write_text(_bomb())
    assert main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the YAML alias *a is not allowed" in err


def test_a_merge_key_is_an_alias_too():
    with pytest.raises(SpecError, match=r"line 9\): the YAML alias \*base is not allowed"):
        parse_spec(MINIMAL + "base: &base {alpha: 0.1}\nconformal:\n  <<: *base\n")


def test_duplicate_keys_name_the_key_and_both_lines():
    with pytest.raises(SpecError) as err:
        parse_spec(MINIMAL + "costs:\n  false_positive: 10\n  false_positive: 20\n")
    assert str(err.value) == ("case.yaml: the key 'costs.false_positive' is given twice (lines 8 and 9); YAML would "
                              "keep only the last; keep one of them")
    with pytest.raises(SpecError, match=r"the key 'task' is given twice \(lines 3 and 7\)"):
        parse_spec(MINIMAL + "task: regression\n")


def test_nesting_and_size_are_capped():
    with pytest.raises(SpecError, match=r"nested more than 50 levels deep"):
        parse_spec(MINIMAL + "goals: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(SpecError, match="more than the 1,000,000 a case spec may have"):
        parse_spec(MINIMAL + "goals: [" + "x, " * (MAX_SPEC_BYTES // 3) + "]\n")


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "case.yaml"
    with open(path, "w") as f:
        f.write(MINIMAL)
        f.seek(MAX_SPEC_BYTES * 50)
        f.write("\n")
    with pytest.raises(SpecError, match=r"case.yaml has 50,000,001 bytes, more than the 1,000,000"):
        load_spec(path)


def test_a_latin_1_file_names_its_encoding(tmp_path):
    path = tmp_path / "case.yaml"
    path.write_bytes(MINIMAL.replace("Send a loan", "Révise a loan").encode("latin-1"))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value) == ("case.yaml is not UTF-8: byte 0xe9 on line 2 ('é' in Windows-1252 / Latin-1 "
                              "(ISO-8859-1), which it looks like); save the file as UTF-8 (your editor's encoding menu)")
    with pytest.raises(SpecError, match="case.yaml is UTF-16 text, not UTF-8"):
        decode_spec(MINIMAL.encode("utf-16"))
    assert load_spec(_write(tmp_path / "bom.yaml", "\ufeff" + MINIMAL)).name == "loans"  # a UTF-8 BOM is fine


def test_utf16_without_a_mark_is_named_and_a_binary_file_is_not_called_utf16():
    """A file of bytes with a NUL near its start was "UTF-16 text" (a probe passed b'\\x00\\x01\\x02binary')."""
    with pytest.raises(SpecError, match="case.yaml is UTF-16 text, not UTF-8"):
        decode_spec(MINIMAL.encode("utf-16-le"))                  # no byte-order mark
    with pytest.raises(SpecError, match="case.yaml is UTF-16 text, not UTF-8"):
        decode_spec(MINIMAL.encode("utf-16-be"))
    with pytest.raises(SpecError, match=r"^case.yaml is not text \(it holds NUL bytes\); pass the case.yaml"):
        decode_spec(b"\x00\x01\x02binary" + bytes(range(256)))


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_an_api_key_in_case_yaml_is_refused_with_the_reason():
    with pytest.raises(SpecError) as err:
        parse_spec(MINIMAL + "serving:\n  api_key: hunter2-hunter2\n")
    msg = str(err.value)
    assert msg.startswith("case.yaml: serving.api_key (line 8): an API key written in case.yaml is refused: "
                          "case.yaml is meant to be committed and shared")
    assert "MLCASE_API_KEY" in msg and "serving.api_key_file" in msg and "hunter2" not in msg
    assert parse_spec(MINIMAL + "serving:\n  api_key_file: ~/.config/churn.key\n").serving.api_key_file


def test_declared_paths_default_to_none():
    spec = parse_spec(MINIMAL)
    assert spec.data.allowed_paths == [] and spec.serving.api_key_file is None
