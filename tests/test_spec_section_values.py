"""A section of case.yaml given as one value is named with what goes there, and how to write it."""

from __future__ import annotations

import pytest

from mlcase.errors import SpecError
from mlcase.spec.loading import parse_spec

BASE = """name: t
decision: d
task: binary
data: {source: data.csv, target: y, positive: 1}
"""


@pytest.mark.parametrize("line, words", [
    ("conformal: 0.1", "conformal (line 5): expected a mapping of its settings (alpha, method, max_interval_width, "
                       "defer), got 0.1; write 'conformal: {alpha: 0.1}'"),
    ("conformal: x", "conformal (line 5): expected a mapping of its settings (alpha, method, max_interval_width, "
                     "defer), got 'x'; write its settings under 'conformal:', one 'key: value' a line"),
    ("serving: true", "serving (line 5): expected a mapping of its settings (fallback, api_key,"),
])
def test_a_section_given_as_one_value_says_what_goes_there(line, words):
    with pytest.raises(SpecError) as err:
        parse_spec(BASE + line + "\n")
    text = str(err.value)
    assert words in text and "\n" not in text and "ConformalSpec" not in text and "instance of" not in text, text
    # and the fix it gives is a spec that loads
    if "{alpha: 0.1}" in words:
        assert parse_spec(BASE + "conformal: {alpha: 0.1}\n").conformal.alpha == 0.1
