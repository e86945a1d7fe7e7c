"""Personal data, found before it spreads: columns that look like direct identifiers, or quasi-identifiers.

A column is flagged when a sample of its values matches what one kind of identifier looks
like *and* its values are nearly all different (an identifier names one person; a category
does not):

============== ===================================================================
e-mail          the WHATWG "valid e-mail address" pattern (what browsers check)
phone           7-15 digits (9 or more without ``+``) and phone punctuation, valid per
                Google's libphonenumber (``phonenumbers``): with a ``+`` prefix, or as
                a North American number written with separators, or (when the column's
                name says phone) as a national number of :data:`PHONE_REGIONS`
card number     13-19 digits passing the Luhn checksum (``stdnum.luhn``)
account number  an IBAN with a valid checksum (``stdnum.iban``)
national id     formats with a checksum or an unambiguous shape (``stdnum``: US SSN
                written ``123-45-6789``, Spanish DNI, Italian codice fiscale,
                Brazilian CPF, French NIR, UK NINO by its published pattern)
person name     1-4 words of letters, capitalised or all lower case, *and* a column name that
                says a person's name (``first_name``, ``surname``, ``customer_name`` ...), with
                30% of them or 20 names distinct; a column called just ``name`` only when its
                values read "Last, First"
============== ===================================================================

Evidence: the share of sampled non-missing values that match (at least
:data:`MATCH_SHARE`, or :data:`HINTED_MATCH_SHARE` when the column's name also says what it
is, e.g. ``email``, ``phone``, ``iban``), and the share of distinct values among them (at least
:data:`DISTINCT_SHARE`). Random digits pass a Luhn check one time in ten, so a numeric column
of account numbers or row ids is not a card column unless nearly all of it passes.

A flagged column is an **error** (``personal_data``) unless the spec declares it: under
``personal_data`` with a purpose, as ``data.id``, under ``sensitive``, or kept out of the
features (``data.features.exclude``, or not in ``data.features.include``). A declared one is a
note (``personal_data_declared``); the data's ``id`` that is personal data but not declared
under ``personal_data`` is a warning, because the prediction log keeps it raw as ``unit_id``.
Quasi-identifiers (:data:`QUASI_KINDS`) name no one alone and repeat (neighbours share a ZIP code): a **postal
code** (a column named zip, postcode, postal, plz ... holding US ZIP codes, 4-digit codes, UK or Canadian postcodes;
a UK or Canadian postcode is found by its shape alone) and a **birth date** (a column named birth, dob, born ...
holding whole dates from 1880 to today; a year or a quarter of birth is what HIPAA's Safe Harbor keeps, and is not
flagged). One undeclared is a warning (``quasi_identifier``). A postal code and a birth date found together (with
a column named sex or gender, when there is one) are measured on the data: the share of rows no other row
shares on them; at :data:`UNIQUE_SHARE` or more, with neither declared, it is an error
(``quasi_identifiers_combined``), and the model card and the report say what they single out.

No finding holds a value of the column: only counts and shares.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .context import Context
from .registry import register
from .report import Check

PII_SAMPLE = 2000          # non-missing values per column checked (validators cost ~20 us a value)
MATCH_SHARE = 0.8          # share of values that must look like the identifier
HINTED_MATCH_SHARE = 0.5   # ... when the column's name says what it holds
DISTINCT_SHARE = 0.5       # share of distinct values among them (identifiers are nearly unique)
NAME_DISTINCT_SHARE = 0.3  # person names repeat more (two John Smiths)
# ... or this many different names: on a large table first and family names repeat far more than 30%
# (medicaldata::covid_testing, 15,524 tests: 'fake_first_name' 831 names, 'fake_last_name' 27, were not flagged)
NAME_MIN_DISTINCT = 20
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "BR", "ES", "IT", "NL", "AU", "CA")

KIND_WORDS = {"email": "e-mail addresses", "phone": "phone numbers", "card_number": "payment card numbers",
              "account_number": "bank account numbers (IBAN)", "national_id": "national identity numbers",
              "person_name": "person names", "postal_code": "postal codes", "birth_date": "birth dates"}

#: quasi-identifiers: one alone names no one, together they do. A 5-digit ZIP code, the full date of birth and sex
#: single out 87% of US residents (Sweeney, "Simple demographics often identify people uniquely", 2000); HIPAA's
#: Safe Harbor (45 CFR 164.514(b)(2)) removes ZIP codes past their first 3 digits and every date but the year.
QUASI_KINDS = ("postal_code", "birth_date")
#: the share of rows a combination of quasi-identifiers singles out that makes it an identifier (an error)
UNIQUE_SHARE = 0.5
_QUASI_HINTS = {
    "postal_code": re.compile(r"(^|_)(zip|zips|zipcode|zip_code|zip5|postcode|post_code|postal|postal_code|"
                              r"postalcode|plz|postleitzahl|code_postal)(_|$)"),
    # 'births' (a count), 'birthweight', 'birth_rate', 'birthplace' hold no dates: the values decide
    "birth_date": re.compile(r"birth|(^|_)(dob|bday|born|born_on|geburtsdatum|nacimiento)(_|$)"),
}
_SEX_NAME = re.compile(r"(^|_)(sex|gender)(_|$)")
# a US ZIP (with ZIP+4; modeldata::Sacramento writes them 'z95838'), a 4-digit code (AT, AU, BE, CH, DK, NO ...),
# the Dutch '1234 AB'; a UK postcode and a Canadian one have shapes nothing else has, and are found without the name
_ZIP_TEXT = re.compile(r"^[A-Za-z]?\d{5}(-\d{4})?$|^\d{4}( ?[A-Za-z]{2})?$|^\d{3}-\d{4}$|^\d{2}-\d{3}$")
_UK_POSTCODE = re.compile(r"^(GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2})$", re.I)
_CA_POSTCODE = re.compile(r"^[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d$", re.I)
_DATE_TEXT = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\S*)?$")
EARLIEST_BIRTH = pd.Timestamp("1880-01-01")

# the column name says what it holds (words of the name, split at _ - . space and case changes)
_HINTS = {
    "email": re.compile(r"^(e?mail|email_?address|e_mail)$|(^|_)e?mail(_|$)"),
    "phone": re.compile(r"(^|_)(phone|tel|telephone|mobile|cell|msisdn|fax)(_|$)"),
    "card_number": re.compile(r"(^|_)(card|cc|pan|credit_?card)(_?(no|num|number))?(_|$)"),
    "account_number": re.compile(r"(^|_)(iban|account_?(no|num|number)|acct(_?(no|num))?|bank_?account)(_|$)"),
    "national_id": re.compile(r"(^|_)(ssn|nino|national_?id|passport|tax_?id|dni|nif|cpf|nir|sin|personnummer)(_|$)"),
    "person_name": re.compile(r"(^|_)((first|last|middle|given|family|full|sur|fore|maiden|customer|client|"
                              r"patient|person|contact|employee|holder|applicant|borrower)_?names?)(_|$)"),
}
# a column called just "name" holds towns, firms and pets as often as people: its values must read
# "Last, First" to be called person names
_BARE_NAME = re.compile(r"^(name|names)$")
_LAST_FIRST = re.compile(r"^[^\W\d_][^\W\d_'’.\-]*(?:['’\- ][^\W\d_]+)*,\s+[^\W\d_][^\W\d_'’.\-]*"
                         r"(?:['’.\- ]+[^\W\d_]+)*\.?$")

# WHATWG HTML "valid e-mail address". email-validator (RFC 5322 + IDNA) is a validator, not a detector:
# measured here on 2,300 values, 15.9 us a value against 0.18 us for this pattern, with the same verdicts
# on e-mail-like data; detection needs the shape, not deliverability.
_EMAIL = re.compile(r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
                    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$")
_PHONE_SHAPE = re.compile(r"^\+?[\d\s().\-/]{7,24}$")
_DATE_SHAPE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}$")
_SSN = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_NINO = re.compile(r"^(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]$")
_NAME = re.compile(r"^[^\W\d_][^\W\d_'’.\-]*(?:['’.\-][^\W\d_]+)*\.?(?:,?\s+[^\W\d_][^\W\d_'’.\-]*"
                   r"(?:['’.\-][^\W\d_]+)*\.?){0,3}$")


def _words(name: str) -> str:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def _is_email(v: str) -> bool:
    return bool(_EMAIL.match(v))


def _is_phone(v: str, regions: tuple = PHONE_REGIONS) -> bool:
    import phonenumbers

    if not _PHONE_SHAPE.match(v) or _DATE_SHAPE.match(v):
        return False
    digits = sum(ch.isdigit() for ch in v)
    if not (7 if v.startswith("+") else 9) <= digits <= 15:  # 8-digit codes (ring numbers, lot numbers) are
        return False                                          # valid somewhere; a national number has 9 or more
    for region in ((None,) if v.startswith("+") else regions):
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(v, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def _is_card(v: str) -> bool:
    from stdnum import luhn

    digits = re.sub(r"[\s-]", "", v)
    return digits.isdigit() and 13 <= len(digits) <= 19 and luhn.is_valid(digits)


def _is_iban(v: str) -> bool:
    from stdnum import iban

    return len(v) >= 15 and v[:2].isalpha() and iban.is_valid(v)


def _is_national_id(v: str) -> bool:
    from stdnum.br import cpf
    from stdnum.es import dni
    from stdnum.fr import nir
    from stdnum.it import codicefiscale
    from stdnum.us import ssn

    if _SSN.match(v):
        return ssn.is_valid(v)
    if _NINO.match(v.upper()):
        return True
    compact = v.replace(" ", "").replace(".", "").replace("-", "")
    if len(compact) == 9 and compact[-1].isalpha() and compact[:-1].isdigit():
        return dni.is_valid(compact)
    if len(compact) == 16 and compact.isalnum() and not compact.isdigit():
        return codicefiscale.is_valid(compact)
    if re.fullmatch(r"\d{3}\.\d{3}\.\d{3}-\d{2}", v):
        return cpf.is_valid(v)
    if len(compact) == 15 and compact[:13].isdigit() and compact[0] in "12":
        return nir.is_valid(compact)
    return False


def _is_name(v: str) -> bool:
    # capitalised, or written all in lower case as pipelines often normalise names (covid_testing's 'stark')
    return bool(_NAME.match(v)) and (v[:1].isupper() or v.islower())


# how a North American number is grouped when written: 201-555-0123, (201) 555-0123, 1 201 555 0123, (201) 5550123
_NANP_GROUPS = {(3, 3, 4), (1, 3, 3, 4), (3, 7)}


def _is_phone_unhinted(v: str) -> bool:
    """Without a column name saying phone, only unambiguous numbers count: international (``+``), or written
    with separators and valid in the North American plan, grouped as it writes them (bird-ring and lot numbers
    such as ``1705-24645`` are valid national numbers of some European plans, and gt::pizzaplace's order ids
    ``2015-000001`` read as 201-500-0001)."""
    if v.startswith("+"):
        return _is_phone(v, ("US", "CA"))
    groups = tuple(len(g) for g in re.findall(r"\d+", v))
    return groups in _NANP_GROUPS and any(ch in v for ch in " -().") and _is_phone(v, ("US", "CA"))


VALIDATORS = {"email": _is_email, "phone": _is_phone_unhinted, "card_number": _is_card, "account_number": _is_iban,
              "national_id": _is_national_id, "person_name": _is_name}


def _text_values(s: pd.Series) -> list[str] | None:
    """The sampled values as text, or None when the column cannot hold an identifier (numbers with
    fractions, booleans, dates)."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
        return None
    if pd.api.types.is_numeric_dtype(s):
        if pd.api.types.is_complex_dtype(s):
            return None
        if not pd.api.types.is_integer_dtype(s):
            v = s.dropna().to_numpy(dtype="float64")
            v = v[np.isfinite(v)]  # an inf is no identifier (and no integer)
            if len(v) == 0 or not ((v == np.round(v)).all() and (np.abs(v) < 1e18).all()):
                return None
            return [str(int(x)) for x in v]
        return [str(int(x)) for x in s.dropna()]
    return [str(x).strip() for x in s.dropna() if str(x).strip()]


def scan_column(name: str, s: pd.Series) -> dict | None:
    """What ``s`` looks like: ``{kind, match_share, distinct_share, sampled, name_hint}``, or None.

    ``s`` is a sample of the column (at most :data:`PII_SAMPLE` non-missing values are read).
    """
    values = _text_values(s)
    if not values:
        return scan_quasi(name, s)
    values = values[:PII_SAMPLE]
    words = _words(name)
    hints = {k for k, rx in _HINTS.items() if rx.search(words)}
    validators = dict(VALIDATORS)
    if "phone" in hints:
        validators["phone"] = _is_phone
    if _BARE_NAME.match(words):
        hints.add("person_name")
        validators["person_name"] = lambda v: bool(_LAST_FIRST.match(v))
    numeric = pd.api.types.is_numeric_dtype(s)
    n_distinct = len(set(values))
    distinct = n_distinct / len(values)
    best = None
    for kind, ok in validators.items():
        if kind == "person_name" and kind not in hints:
            continue  # names are only called names when the column says so (a car model is two words too)
        if numeric and kind not in ("card_number",) and kind not in hints:
            continue  # a bare integer is a phone or an id only when the column says so
        need = HINTED_MATCH_SHARE if kind in hints else MATCH_SHARE
        if kind == "person_name":  # a column the name of which says person names: a share or a count
            if distinct < NAME_DISTINCT_SHARE and n_distinct < NAME_MIN_DISTINCT:
                continue
        elif distinct < DISTINCT_SHARE:
            continue
        probe = values[:200]  # most columns fail on the first values; read the rest only when they pass
        if sum(map(ok, probe)) / len(probe) < need * 0.8:
            continue
        share = sum(map(ok, values)) / len(values)
        if share >= need and (best is None or share > best["match_share"]):
            best = {"kind": kind, "match_share": share, "distinct_share": distinct, "distinct": n_distinct,
                    "sampled": len(values),
                    "name_hint": kind in hints}
    return best or scan_quasi(name, s)


def _postal_share(values: list[str], numeric: bool, hinted: bool) -> float:
    if numeric:  # a number keeps a ZIP only when the column says so, and loses its leading zeros (01062 -> 1062)
        return sum(v.isdigit() and 100 <= int(v) <= 99999 for v in values) / len(values) if hinted else 0.0
    if hinted:
        return sum(bool(_ZIP_TEXT.match(v) or _UK_POSTCODE.match(v) or _CA_POSTCODE.match(v))
                   for v in values) / len(values)
    return sum(bool(_UK_POSTCODE.match(v) or _CA_POSTCODE.match(v)) for v in values) / len(values)


def _birth_dates(s: pd.Series) -> pd.Series | None:
    """The values of ``s`` read as whole dates (a day, not a year or a quarter: Safe Harbor keeps the year), NaT
    where one is not; None when the column holds no dates at all."""
    x = s.dropna()
    if pd.api.types.is_datetime64_any_dtype(x):
        t = pd.to_datetime(x)
        return t.dt.tz_localize(None) if getattr(t.dt, "tz", None) is not None else t
    if pd.api.types.is_bool_dtype(x) or pd.api.types.is_float_dtype(x) or pd.api.types.is_complex_dtype(x):
        return None
    text = x.astype(str).str.strip()
    if pd.api.types.is_integer_dtype(x) or text.str.fullmatch(r"\d{8}").all():  # 19640411
        return pd.to_datetime(text.where(text.str.fullmatch(r"\d{8}")), format="%Y%m%d", errors="coerce")
    shaped = text.where(text.str.match(_DATE_TEXT))
    if shaped.isna().all():
        return None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = pd.to_datetime(shaped, errors="coerce", format="mixed", utc=True)
    return t.dt.tz_localize(None)


def scan_quasi(name: str, s: pd.Series) -> dict | None:
    """A quasi-identifier (:data:`QUASI_KINDS`) ``s`` looks like: ``{kind, match_share, distinct_share, distinct,
    sampled, name_hint, quasi}``, or None. A postal code is found by its name and its values (a UK or Canadian
    postcode by its values alone); a birth date by its name and values that are whole dates, from
    :data:`EARLIEST_BIRTH` to today. They repeat (neighbours share a ZIP, twins a birthday): two values are enough."""
    x = s.dropna()
    if len(x) == 0 or pd.api.types.is_bool_dtype(x):
        return None
    x = x.iloc[:PII_SAMPLE]
    words = _words(name)
    hits = []
    if _QUASI_HINTS["birth_date"].search(words):
        t = _birth_dates(x)
        if t is not None:
            ok = t.notna() & (t >= EARLIEST_BIRTH) & (t <= pd.Timestamp.now())
            hits.append(("birth_date", float(ok.mean()), int(t[ok].nunique()), True))
    hinted = bool(_QUASI_HINTS["postal_code"].search(words))
    numeric = pd.api.types.is_numeric_dtype(x)
    # a number is a postal code only under its name; text without the name only by a UK or Canadian shape, which
    # most columns fail on their first values (modeldata::grants_other's 1,500 columns are read once each)
    if not pd.api.types.is_datetime64_any_dtype(x) and (hinted or not numeric):
        values = _text_values(x if hinted else x.iloc[:50])
        if values and not hinted and _postal_share(values, numeric, hinted) >= MATCH_SHARE * 0.8:
            values = _text_values(x)
        if values:
            share = _postal_share(values, numeric, hinted)
            hits.append(("postal_code", share, len(set(values)), hinted))
    best = None
    for kind, share, n_distinct, hinted in hits:
        if n_distinct >= 2 and share >= (HINTED_MATCH_SHARE if hinted else MATCH_SHARE) and (
                best is None or share > best["match_share"]):
            best = {"kind": kind, "match_share": share, "distinct_share": n_distinct / len(x), "distinct": n_distinct,
                    "sampled": len(x), "name_hint": hinted, "quasi": True}
    return best


def sex_column(frame: pd.DataFrame, skip=()) -> str | None:
    """The column named sex or gender with at most 3 values (the third of the quasi-identifiers), or None."""
    for c in frame.columns:
        if c not in skip and _SEX_NAME.search(_words(c)) and 1 <= frame[c].nunique(dropna=True) <= 3:
            return c
    return None


def combination(frame: pd.DataFrame, found: list[dict], skip=()) -> dict | None:
    """How many rows the postal codes, birth dates (and sex) found together single out: ``{columns, rows, unique,
    share}`` over the rows where all of them are known, or None without both a postal code and a birth date."""
    postal = [f["column"] for f in found if f.get("kind") == "postal_code" and f.get("detected", True)]
    birth = [f["column"] for f in found if f.get("kind") == "birth_date" and f.get("detected", True)]
    if not postal or not birth:
        return None
    sex = sex_column(frame, skip=(*skip, *postal, *birth))
    cols = [postal[0], birth[0], *([sex] if sex else [])]
    known = frame[cols].dropna()
    if len(known) == 0:
        return None
    unique = int((~known.astype(str).duplicated(keep=False)).sum())
    return {"columns": cols, "rows": len(known), "unique": unique, "share": unique / len(known)}


def declared_as(ctx: Context, column: str) -> str | None:
    """How the spec declares ``column`` (personal_data, data.id, sensitive, excluded), or None."""
    spec, d = ctx.spec, ctx.spec.data
    if column in spec.personal_columns:
        return "personal_data"
    if column == d.id:
        return "data.id"
    if column in spec.sensitive:
        return "sensitive"
    if column in d.features.exclude:
        return "data.features.exclude"
    if d.features.include and column not in d.features.include:
        return "not in data.features.include"
    return None


@register("personal_data", ids=("personal_data", "personal_data_declared", "quasi_identifier",
                               "quasi_identifiers_combined"), order=30)
def check_personal_data(ctx: Context) -> list[Check]:
    spec = ctx.spec
    out: list[Check] = []
    found: list[dict] = []
    rows = ctx.all_sample[:PII_SAMPLE * 2]
    for c in ctx.frame.columns:
        if c == spec.data.target or c == spec.data.time or c == spec.data.label_time:
            continue
        hit = scan_column(c, ctx.column(c, rows))
        declared = declared_as(ctx, c)
        purpose = next((p.purpose for p in spec.personal_data if p.column == c), None)
        if hit is None:
            if declared == "personal_data":
                found.append({"column": c, "kind": _declared_kind(spec, c), "declared_as": declared,
                              "purpose": purpose, "detected": False})
            continue
        found.append({"column": c, **hit, "declared_as": declared, "purpose": purpose, "detected": True})
        if hit.get("quasi"):
            out.append(_quasi_finding(c, hit, declared, purpose))
            continue
        what = KIND_WORDS[hit["kind"]]
        evidence = {k: hit[k] for k in ("kind", "match_share", "distinct_share", "distinct", "sampled", "name_hint")}
        measured = (f"{hit['match_share']:.0%} of {hit['sampled']:,} sampled values match, "
                    f"{hit['distinct']:,} different ({hit['distinct_share']:.0%})")
        if declared is None:
            out.append(Check(
                "personal_data", "error", f"column '{c}' looks like {what} ({measured})", column=c,
                evidence=evidence,
                fix=f"declare it before it spreads: add it to personal_data with its purpose (`personal_data: "
                    f"{{{c}: why the case keeps it}}`; the prediction log then keeps it hashed), or set it as "
                    f"data.id, list it under sensitive, or exclude it (data.features.exclude)"))
        elif declared == "data.id":
            out.append(Check(
                "personal_data_declared", "warning",
                f"data.id '{c}' looks like {what} ({measured}); the prediction log keeps it raw as unit_id",
                column=c, evidence={**evidence, "declared_as": declared},
                fix=f"add '{c}' to personal_data with its purpose, so the log keeps it hashed (serving.log_inputs)"))
        else:
            out.append(Check(
                "personal_data_declared", "info", f"column '{c}' looks like {what} ({measured}); declared as "
                f"{declared}" + (f" (purpose: {purpose})" if purpose else ""), column=c,
                evidence={**evidence, "declared_as": declared}))
    ctx.stats["personal_data"] = found
    skip = (spec.data.target, spec.data.time, spec.data.label_time)
    combo = combination(ctx.frame, found, skip=skip)
    if combo is not None:
        ctx.stats["quasi_identifiers"] = combo
        out.append(_combination_finding(combo, {f["column"]: f.get("declared_as") for f in found}))
    return out


def _quasi_finding(c: str, hit: dict, declared: str | None, purpose: str | None) -> Check:
    what = KIND_WORDS[hit["kind"]]
    evidence = {k: hit[k] for k in ("kind", "match_share", "distinct_share", "distinct", "sampled", "name_hint")}
    measured = f"{hit['match_share']:.0%} of {hit['sampled']:,} sampled values match, {hit['distinct']:,} different"
    if declared is None:
        return Check(
            "quasi_identifier", "warning", f"column '{c}' looks like {what} ({measured}): a quasi-identifier, "
            "personal data that singles people out together with others (a ZIP code, birth date and sex identify "
            "87% of US residents)", column=c, evidence=evidence,
            fix=f"declare it: add it to personal_data with its purpose (`personal_data: {{{c}: why the case keeps "
                f"it}}`; the prediction log then keeps it hashed), or exclude it (data.features.exclude)"
                + ("; or keep only the year of birth" if hit["kind"] == "birth_date" else
                   "; or keep only its first 3 digits (HIPAA Safe Harbor)"))
    return Check("quasi_identifier", "info", f"column '{c}' looks like {what} ({measured}), a quasi-identifier; "
                 f"declared as {declared}" + (f" (purpose: {purpose})" if purpose else ""), column=c,
                 evidence={**evidence, "declared_as": declared})


def _combination_finding(combo: dict, declared: dict) -> Check:
    cols = combo["columns"]
    named = ", ".join(f"'{c}'" for c in cols[:-1]) + f" and '{cols[-1]}'"
    title = (f"{named} together single out {combo['unique']:,} of {combo['rows']:,} rows ({combo['share']:.0%}): "
             "whoever holds them can find these people in another list (a voter roll, a customer file)")
    evidence = dict(combo)
    undeclared = [c for c in cols[:2] if declared.get(c) is None]
    if combo["share"] >= UNIQUE_SHARE and len(undeclared) == 2:
        return Check("quasi_identifiers_combined", "error", title, column=cols[0], evidence=evidence,
                     fix=f"declare them before they spread: add {' and '.join(repr(c) for c in cols[:2])} to "
                         "personal_data with their purpose (the prediction log then keeps them hashed), or exclude "
                         "one (data.features.exclude), or coarsen it (the year of birth, the first 3 digits of "
                         "the ZIP code)")
    # one of them declared (hashed in the log) or excluded breaks the combination where it would spread
    return Check("quasi_identifiers_combined", "info", title + (
        f"; {', '.join(repr(c) for c in undeclared)} not declared" if undeclared else "; declared"),
        column=cols[0], evidence={**evidence, "undeclared": undeclared},
        fix=f"declare {' and '.join(repr(c) for c in undeclared)} under personal_data with the purpose"
        if undeclared else None)


def _declared_kind(spec, column: str) -> str | None:
    return next((p.kind for p in spec.personal_data if p.column == column), None)
