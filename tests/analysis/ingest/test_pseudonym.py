import hashlib
import hmac

import polars as pl
import pytest

from analysis.ingest.cpr import normalise_cpr
from analysis.ingest.pseudonym import _pseudonyms, check_key, key_id, pseudonym_of, pseudonymise

KEY = b"k" * 32
OTHER = b"o" * 32


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


@pytest.mark.parametrize("key", [b"", b"short", b"x" * 31])
def test_short_or_missing_key_is_refused_without_echoing_it(key) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes") as error:
        check_key(key)
    assert key.decode() not in str(error.value) or key == b""


@pytest.mark.parametrize("length", [32, 63, 64, 65, 200])
def test_bulk_pseudonyms_equal_the_standard_hmac_for_every_key_length(length: int) -> None:
    key = bytes(range(length))  # 64 is the SHA-256 block size; a longer key is hashed first
    values = ["0101901234", "3112999999", "0000000000"]
    assert _pseudonyms(values, key) == [pseudonym_of(v, key) for v in values]
    assert pseudonym_of(values[0], key) == hmac.new(key, b"cpr:v1:0101901234", hashlib.sha256).hexdigest()
