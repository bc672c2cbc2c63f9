"""Reference numbers for ``analysis.estimate.honest`` from moderndid's HonestDiD port (not run by tests).

moderndid needs Python >= 3.12, so it cannot be a dependency of this project. Run this script in a
throwaway venv and commit the JSON it writes to ``tests/analysis/estimate/fixtures/``::

    uv venv --python 3.12 /tmp/h7-312
    uv pip install --python /tmp/h7-312/bin/python 'moderndid[didhonest]==0.4.1' pyfixest
    /tmp/h7-312/bin/python scripts/reference/honest_did_reference.py \
        tests/analysis/estimate/fixtures/honest_did_reference.json

(a path argument, not stdout: HiGHS prints its banner to stdout).

Cases:

* ``ehec_twfe``: the example of the R HonestDiD README (v0.2.8, "Example usage - Medicaid expansions"): TWFE
  event study of ``dins`` on the ACS/ehec panel, years < 2016, the 2015 cohort dropped, reference year 2013,
  SEs clustered by state (``fixest::feols(dins ~ i(year, D, ref = 2013) | stfips + year,
  cluster = "stfips")``, reproduced with pyfixest, which matches fixest's small-sample correction). The
  README prints the C-LF robust CIs for the first post period at Mbar 0.5, 1, 1.5, 2 (``r_readme``);
  moderndid's numbers on the same betahat/sigma are stored too.
* ``synthetic_pooled``: 6 pre and 4 post periods, a mild pre-trend, correlated errors; target the average of
  the post periods (what the CTI report pools).
"""

from __future__ import annotations

import json
import sys

import moderndid
import numpy as np
import polars as pl
from moderndid.didhonest import (
    compute_identified_set_rm,
    construct_original_cs,
    create_sensitivity_results_rm,
)

M_BARS = [0.5, 1.0, 1.5, 2.0]


def ehec_event_study() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """TWFE event study of the README example: coefficients, clustered covariance, coefficient names."""
    import pyfixest as pf

    data = moderndid.load_ehec()
    frame = data.to_pandas() if hasattr(data, "to_pandas") else data
    frame = frame[(frame["year"] < 2016) & (frame["yexp2"].isna() | (frame["yexp2"] != 2015))].copy()
    frame["D"] = (frame["yexp2"] == 2014).astype(int)
    fit = pf.feols("dins ~ i(year, D, ref=2013) | stfips + year", data=frame, vcov={"CRV1": "stfips"})
    names = list(fit.coef().index)
    return fit.coef().to_numpy(), fit._vcov, names


def moderndid_case(beta: np.ndarray, sigma: np.ndarray, n_pre: int, n_post: int, l_vec: np.ndarray) -> dict:
    """Conventional CI, C-LF robust CIs and identified sets from moderndid at ``M_BARS``."""
    table = create_sensitivity_results_rm(
        betahat=beta,
        sigma=sigma,
        num_pre_periods=n_pre,
        num_post_periods=n_post,
        m_bar_vec=M_BARS,
        l_vec=l_vec,
    )
    frame = table if isinstance(table, pl.DataFrame) else pl.from_pandas(table)
    original = construct_original_cs(
        betahat=beta, sigma=sigma, num_pre_periods=n_pre, num_post_periods=n_post, l_vec=l_vec
    )
    identified = [
        compute_identified_set_rm(
            m_bar=m, true_beta=beta, l_vec=l_vec, num_pre_periods=n_pre, num_post_periods=n_post
        )
        for m in M_BARS
    ]
    return {
        "original": [float(original.lb), float(original.ub)],
        "robust": [
            {"m_bar": float(r["Mbar"]), "lb": float(r["lb"]), "ub": float(r["ub"])}
            for r in frame.iter_rows(named=True)
        ],
        "identified": [
            {"m_bar": m, "lb": float(i.id_lb), "ub": float(i.id_ub)}
            for m, i in zip(M_BARS, identified, strict=True)
        ],
    }


def main() -> None:
    """Write the reference JSON to the path given as the only argument."""
    beta, sigma, names = ehec_event_study()
    cases = {
        "ehec_twfe": {
            "source": "R HonestDiD README v0.2.8 (asheshrambachan/HonestDiD@6813f02), ehec data: moderndid",
            "coefficients": names,
            "n_pre": 5,
            "n_post": 2,
            "beta": beta.tolist(),
            "sigma": sigma.tolist(),
            "r_readme": {
                "l_vec": [1.0, 0.0],
                "robust": [
                    {"m_bar": 0.5, "lb": 0.0241, "ub": 0.0673},
                    {"m_bar": 1.0, "lb": 0.0171, "ub": 0.0720},
                    {"m_bar": 1.5, "lb": 0.00859, "ub": 0.0796},
                    {"m_bar": 2.0, "lb": -0.00107, "ub": 0.0883},
                ],
            },
            "moderndid_first": moderndid_case(beta, sigma, 5, 2, np.array([1.0, 0.0])),
            "moderndid_average": moderndid_case(beta, sigma, 5, 2, np.array([0.5, 0.5])),
        }
    }
    rng = np.random.default_rng(20260101)
    n_pre, n_post = 6, 4
    times = np.concatenate([np.arange(-n_pre, 0), np.arange(1, n_post + 1)])
    corr = 0.4 ** np.abs(times[:, None] - times[None, :])
    sd = np.where(times < 0, 0.010, 0.014)
    sigma_s = corr * sd[:, None] * sd[None, :]
    truth = np.where(times < 0, 0.002 * times, 0.03 + 0.002 * times)
    beta_s = truth + rng.multivariate_normal(np.zeros(times.size), sigma_s)
    l_avg = np.full(n_post, 1 / n_post)
    cases["synthetic_pooled"] = {
        "source": "synthetic (this script, seed 20260101)",
        "n_pre": n_pre,
        "n_post": n_post,
        "beta": beta_s.tolist(),
        "sigma": sigma_s.tolist(),
        "moderndid_average": moderndid_case(beta_s, sigma_s, n_pre, n_post, l_avg),
    }
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(
            {
                "generator": "scripts/reference/honest_did_reference.py",
                "moderndid": f"{moderndid.__version__} (PyPI)",
                "numpy": np.__version__,
                "cases": cases,
            },
            out,
            indent=1,
        )
        out.write("\n")


if __name__ == "__main__":
    main()
