import hashlib
import hmac

import polars as pl
import pytest

from analysis.ingest.cpr import normalise_cpr
from analysis.ingest.pseudonym import _pseudonyms, check_key, key_id, key_problem, pseudonym_of, pseudonymise

KEY = b"test-key-k-0123456789abcdefghijklmn"
OTHER = b"test-key-o-0123456789abcdefghijklmn"


def _rows(values):
    return normalise_cpr(pl.DataFrame({"cpr": values})).filter(pl.col("cpr_norm").is_not_null())


def test_same_cpr_same_key_same_pseudonym_across_formats() -> None:
    out = pseudonymise(_rows(["610190-1235", "6101901235", " 610190 1235"]), key=KEY, key_id=key_id(KEY))
    assert out["pseudonym"].n_unique() == 1
    assert out["pseudonym"].str.contains(r"^[0-9a-f]{64}$").all()


def test_different_key_is_unlinkable() -> None:
    rows = _rows(["6101901235"])
    a = pseudonymise(rows, key=KEY, key_id=key_id(KEY))["pseudonym"][0]
    b = pseudonymise(rows, key=OTHER, key_id=key_id(OTHER))["pseudonym"][0]
    assert a != b and key_id(KEY) != key_id(OTHER)


def test_cpr_columns_are_dropped_and_key_never_stored() -> None:
    out = pseudonymise(_rows(["6101901235", "7102851236"]), key=KEY, key_id=key_id(KEY))
    assert not {"cpr", "cpr_norm"} & set(out.columns)
    text = str(out.to_dicts())
    assert "6101901235" not in text and KEY.decode() not in text
    assert set(out["key_id"]) == {key_id(KEY)}


@pytest.mark.parametrize(("key", "why"), [
    (b"", "empty"),
    (b"short", "at least 32 bytes"),
    (b"abcdefghijklmnopqrstuvwxyz01234", "at least 32 bytes"),  # 31 bytes
    (b" " * 40, "only whitespace"),
    (b"\t\n " * 14, "only whitespace"),
    (b" " + KEY, "starts or ends with whitespace"),
    (KEY + b"\n", "starts or ends with whitespace"),
    (b"x" * 40, "distinct bytes"),
    (b"ab" * 20, "distinct bytes"),
    (b"0123456780" * 4, "distinct bytes"),  # 9 distinct
])
def test_key_rules_refuse_weak_keys_without_echoing_them(key: bytes, why: str) -> None:
    assert why in key_problem(key)
    with pytest.raises(ValueError, match=why) as error:
        check_key(key)
    assert key.strip() == b"" or key.decode().strip() not in str(error.value)
    with pytest.raises(ValueError):
        key_id(key)


@pytest.mark.parametrize("key", [KEY, b"0123456789" * 4, b"9f86d081884c7d659a2feaa0c55ad015",
                                 b"a3f1c2e4b5d6978812ab34cd56ef7890a3f1c2e4b5d6978812ab34cd56ef7890",
                                 "nøgle med æøå og mellemrum 0123".encode()])
def test_good_keys_pass_the_rules(key: bytes) -> None:
    assert key_problem(key) is None
    check_key(key)


@pytest.mark.parametrize("length", [32, 63, 64, 65, 200])
def test_bulk_pseudonyms_equal_the_standard_hmac_for_every_key_length(length: int) -> None:
    key = bytes(range(length))  # 64 is the SHA-256 block size; a longer key is hashed first
    values = ["0101901234", "3112999999", "0000000000"]
    assert _pseudonyms(values, key) == [pseudonym_of(v, key) for v in values]
    assert pseudonym_of(values[0], key) == hmac.new(key, b"cpr:v1:0101901234", hashlib.sha256).hexdigest()
