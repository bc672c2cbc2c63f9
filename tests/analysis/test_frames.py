import numpy as np
import polars as pl
import pytest

from analysis.frames import sum_by


def test_sums_are_the_same_bits_whatever_the_row_order() -> None:
    rng = np.random.default_rng(1)
    frame = pl.DataFrame({"g": rng.integers(0, 50, 20_000), "h": rng.integers(0, 3, 20_000),
                          "w": 1.0 / rng.integers(1, 9, 20_000)})
    first = sum_by(frame, ["g", "h"], "w")
    for seed in range(3):
        shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
        again = sum_by(shuffled, ["g", "h"], "w")
        assert again.write_ipc(None).getvalue() == first.write_ipc(None).getvalue()
    # each group is reduced over its sorted values, and agrees with polars' own sum to the last bits
    expected = frame.group_by("g", "h").agg(pl.col("w").sum()).sort("g", "h")
    assert first.select("g", "h").equals(expected.select("g", "h"))
    assert np.allclose(first["w"].to_numpy(), expected["w"].to_numpy(), rtol=1e-14, atol=0)
    tiny = [sum_by(pl.DataFrame({"g": [1, 1, 1], "w": w}), ["g"], "w")["w"].item()
            for w in ([0.3, 0.1, 0.2], [0.1, 0.2, 0.3])]
    assert tiny[0] == tiny[1] == pytest.approx(0.6, abs=1e-15)


def test_empty_frames_and_missing_columns() -> None:
    empty = sum_by(pl.DataFrame(schema={"g": pl.Int64, "w": pl.Float64}), ["g"], "w", name="total")
    assert empty.columns == ["g", "total"] and empty.height == 0
    with pytest.raises(ValueError, match="lacks columns"):
        sum_by(pl.DataFrame({"g": [1]}), ["g"], "w")
