"""The Monte Carlo harness's code path at a small scale, so it cannot rot (figures printed, not asserted)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("validate", ROOT / "scripts" / "validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_writes_every_cell_and_the_targets(tmp_path: Path) -> None:
    env = {**os.environ, "CTI_DATA_DIR": str(tmp_path), "GX_ANALYTICS_ENABLED": "False"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "validate.py"), "--smoke"],
                          capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "validate" / "validate_latest.json").read_text())
    validate = _module()
    cells = {(c["scenario"], c["design"], c["outcome"]) for c in report["cells"]}
    scenarios = ("default", "placebo")
    expected = {(s, d, o) for s in scenarios for d in validate.DESIGNS for o in validate.HEADLINE}
    assert cells == expected
    assert all(c["replications"] == 2 and c["estimated"] >= 1 for c in report["cells"])
    assert all({"name", "measured", "target", "unit", "met"} <= set(t) for t in report["targets"])
    names = " ".join(t["name"] for t in report["targets"])
    assert "coverage" in names and "bias" in names and "pre-trend test size" in names and "(size)" in names
    placebo = [c for c in report["cells"] if c["scenario"] == "placebo"]
    assert all(c["truth"] == 0 for c in placebo)  # the placebo plants no effect
    assert "| scenario | design |" in report["markdown"] and "bias" in proc.stdout
    # a second run finds every replication on disk and only summarises
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "validate.py"), "--smoke"],
                           capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert again.returncode == 0 and "2 already done" in again.stdout


def _record(scenario: str, estimate: float, truth: float, half: float = 0.01, **extra) -> dict:
    return {"scenario": scenario, "design": "matched_did", "outcome": "employed", "estimate": estimate,
            "se": half / 1.96, "ci_lower": estimate - half, "ci_upper": estimate + half, "truth": truth,
            "truth_analysed": truth, "n_treated": 100, "seconds": 1.0, **extra}


def test_summary_figures_are_the_monte_carlo_definitions() -> None:
    validate = _module()
    draws = ((0.0, 0.5), (0.02, 0.01), (-0.005, 0.2), (0.015, 0.9))
    records = [_record("default", 0.05 + d, 0.04, pretrend_p=p, pretrend_monthly_p=p / 10) for d, p in draws]
    records += [_record("placebo", e, 0.0) for e in (0.0, 0.02, -0.001, 0.004)]
    cells = {c["scenario"]: c for c in validate.summarise(records)}
    default, placebo = cells["default"], cells["placebo"]
    errors = [0.01, 0.03, 0.005, 0.025]
    assert default["bias"] == pytest.approx(sum(errors) / 4)
    assert default["bias_share"] == pytest.approx(default["bias"] / 0.04)
    assert default["rmse"] == pytest.approx((sum(e * e for e in errors) / 4) ** 0.5)
    assert default["coverage"] == pytest.approx(0.5)  # errors 0.01 and 0.005 lie within the half-width 0.01
    assert default["coverage_mc_se"] == pytest.approx((0.25 / 4) ** 0.5)
    assert default["pretrend_rejection"] == pytest.approx(0.25)
    assert default["pretrend_monthly_rejection"] == pytest.approx(0.5)  # p / 10: 0.001 and 0.02 as well
    assert placebo["pretrend_rejection"] is None  # no test recorded: not a rate of 0
    assert default["rejection"] == pytest.approx(1.0) and default["ci_width"] == pytest.approx(0.02)
    # the placebo's bias is measured against the reference scenario's effect
    assert placebo["bias_share"] == pytest.approx(placebo["bias"] / 0.04)
    assert placebo["rejection"] == pytest.approx(0.25)  # only 0.02 +- 0.01 excludes zero


def test_coverage_is_of_the_expected_effect_and_of_each_worlds_realised_effect_beside_it() -> None:
    validate = _module()
    # every estimate sits on its world's realised effect, which differs between worlds (0.03 and 0.05)
    records = [_record("default", t, t, half=0.005) for t in (0.03, 0.05, 0.03, 0.05)]
    (cell,) = validate.summarise(records)
    assert cell["coverage_realised"] == pytest.approx(1.0)
    assert cell["coverage"] == pytest.approx(0.0)  # no interval reaches the expected effect 0.04
    assert cell["truth"] == pytest.approx(0.04)
    assert cell["truth_sd"] == pytest.approx((4 * 0.01**2 / 3) ** 0.5)
    goal = next(t for t in validate.targets([cell]) if "coverage" in t["name"])
    assert "expected effect" in goal["name"] and goal["measured"] == 0.0 and goal["met"] is False
    wide = validate.summarise([_record("default", t, t, half=0.02) for t in (0.03, 0.05)])[0]
    assert wide["coverage"] == pytest.approx(1.0)


def test_targets_apply_the_issue_bands_and_count_a_shared_pre_period_once() -> None:
    validate = _module()
    records = [_record("default", 0.04, 0.04, pretrend_p=0.5, pretrend_monthly_p=0.01),
               _record("placebo", 0.0, 0.0, pretrend_p=0.5, pretrend_monthly_p=0.01),
               _record("deep_dip", 0.08, 0.04, pretrend_p=0.01, pretrend_monthly_p=0.01)]
    cells = validate.summarise(records)
    for c in cells:
        c["pre_key"] = "base" if c["scenario"] in ("default", "placebo") else "deep"
    by_name = {t["name"]: t for t in validate.targets(cells)}
    assert by_name["|bias| / effect: default / matched_did / employed"]["met"] is True
    assert by_name["|bias| / effect: deep_dip / matched_did / employed"]["met"] is False
    assert by_name["rejection under no effect (size): placebo / matched_did / employed"]["measured"] == 0.0
    pre = [t for t in by_name.values() if t["name"].startswith("pre-trend test size")]
    assert len(pre) == 1 and "(2 tests)" in pre[0]["name"] and pre[0]["measured"] == pytest.approx(0.5)
    monthly = [t for t in by_name.values() if t["name"].startswith("monthly pre-trend test size")]
    assert len(monthly) == 1 and monthly[0]["measured"] == pytest.approx(1.0) and monthly[0]["met"] is False
