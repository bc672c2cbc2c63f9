"""The whole pipeline on a small mock world through the real CLI, then its promises checked on the output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipelines.audit import cpr_like, scan_cpr, scan_secret

CANARY_KEY = "canary-key-7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e"


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    data = tmp_path_factory.mktemp("e2e") / "data"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(data.parent),
        "CTI_DATA_DIR": str(data),
        "CTI_PSEUDONYM_KEY": CANARY_KEY,
        "GX_ANALYTICS_ENABLED": "False",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--persons", "8000", "--seed", "3"],
        capture_output=True, text=True, env=env, timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return data, proc


def test_every_submission_partition_ran(full_run) -> None:
    data, proc = full_run
    assert "ingest: 71/71 submission partitions ok" in proc.stdout
    assert (data / "assets" / "courses.parquet").exists()


def test_no_raw_cpr_outside_restricted_and_inbox(full_run) -> None:
    data, proc = full_run
    assert (data / "dagster_home" / "history" / "runs.db").exists()  # the event log is part of the scan
    assert scan_cpr(data) == []
    assert cpr_like(proc.stdout) == [] and cpr_like(proc.stderr) == []


def test_the_key_never_leaks(full_run) -> None:
    data, proc = full_run
    assert scan_secret(data, CANARY_KEY) == []  # restricted/ and the event log included
    assert CANARY_KEY not in proc.stdout and CANARY_KEY not in proc.stderr


def test_quarantine_holds_exactly_the_mock_worlds_bad_rows(full_run) -> None:
    data, _ = full_run
    truth = json.loads((data / "world" / "truth.json").read_text())
    quarantine = pl.concat(
        [pl.read_parquet(p) for p in (data / "restricted" / "assets" / "quarantine").rglob("*.parquet")],
        how="diagonal_relaxed",
    )
    assert quarantine.height == sum(len(f["bad_rows"]) for f in truth["submissions"])


def test_same_inputs_give_identical_parquet(full_run, tmp_path: Path) -> None:
    data, _ = full_run
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "CTI_DATA_DIR": str(tmp_path / "data"),
           "CTI_PSEUDONYM_KEY": CANARY_KEY, "GX_ANALYTICS_ENABLED": "False"}
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--persons", "8000", "--seed", "3"],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for relative in ("assets/courses.parquet", "registers/benefits/2024.parquet", "assets/submission_log.parquet"):
        assert (data / relative).read_bytes() == (tmp_path / "data" / relative).read_bytes(), relative
    # Identical report numbers: every published table and every per-outcome estimate, byte for byte.
    published = sorted(p.relative_to(data) for p in (data / "reports" / "tables").glob("*.parquet"))
    published += sorted(p.relative_to(data) for p in (data / "assets" / "effect_estimates").glob("*.parquet"))
    assert len(published) > 13
    different = [str(r) for r in published if (data / r).read_bytes() != (tmp_path / "data" / r).read_bytes()]
    assert different == []
    # The HTML differs only in the run's own identity (run id, time stamp).
    import re

    strip = lambda page: re.sub(r'<section id="run">.*?</section>', "", page, flags=re.S)  # noqa: E731
    first, second = ((d / "reports" / "effect_report.html").read_text() for d in (data, tmp_path / "data"))
    assert strip(first) == strip(second)


def test_before_after_shows_the_ashenfelter_dip(full_run) -> None:
    data, proc = full_run
    assert "effects_job: ok" in proc.stdout
    table = pl.read_parquet(data / "assets" / "before_after.parquet").filter(pl.col("outcome") == "self_support")
    early = table.filter(pl.col("event_time").is_between(-36, -13))["mean"].mean()
    dip = table.filter(pl.col("event_time").is_between(-3, -1))["mean"].mean()
    assert dip < early - 0.1, (dip, early)


def test_effect_report_is_complete_self_contained_and_disclosure_controlled(full_run) -> None:
    import re

    from analysis.publish.effect_report import SECTIONS

    data, proc = full_run
    report = data / "reports" / "effect_report.html"
    assert report.exists() and f"report: {report}" in proc.stdout
    page = report.read_text()
    assert all(f'<section id="{key}">' in page for key in SECTIONS)
    assert page.count("<svg") >= 12
    assert "http://" not in page and "https://" not in page
    assert not [c for c in re.findall(r"<td>(.*?)</td>", page) if re.fullmatch(r"[1-4]", c.strip())]
    assert cpr_like(page) == []
    assert list((data / "reports").glob("effect_report_*.html"))  # the dated copy
    estimates = pl.read_csv(data / "reports" / "tables" / "estimates.csv", separator=";")
    assert {"matched_did", "staggered_att", "naive_before_after"} <= set(estimates["design"].to_list())


def test_every_outcome_has_estimates_with_their_n(full_run) -> None:
    from analysis.schema import OUTCOMES

    data, _ = full_run
    estimates = pl.read_parquet(data / "assets" / "effect_estimates")
    assert set(estimates["outcome"].unique()) == set(OUTCOMES)
    assert estimates["n_treated"].null_count() == 0


def test_steward_views_and_feedback(full_run) -> None:
    data, _ = full_run
    general = (data / "reports" / "steward_view.html").read_text()
    restricted = (data / "restricted" / "reports" / "steward_view.html").read_text()
    assert cpr_like(general) == [] and cpr_like(restricted)  # raw CPR only in the restricted version
    assert "http://" not in general and "https://" not in general
    assert list((data / "reports" / "feedback").glob("*.xlsx"))
    assert "balance_after_matching" not in general and "T00:00:00+00:00" not in general  # steward checks only
    assert (data / "restricted" / "feedback" / "feedback_state.parquet").exists()


def test_every_site_workbook_is_danish(full_run) -> None:
    from language import english_in
    from openpyxl import load_workbook

    from analysis.ingest.submissions import HEADER_VARIANTS

    data, _ = full_run
    books = sorted((data / "restricted" / "reports" / "feedback").glob("*.xlsx"))
    assert len(books) == 7
    for path in books:
        book = load_workbook(path)
        assert book.sheetnames[0] == "Forside"
        cells = [c.value for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
        # the site's own header names (e.g. 'cpr_nr') are quoted in the messages
        allowed = [path.stem, *(v for variants in HEADER_VARIANTS.values() for v in variants)]
        assert [w for v in cells if v for w in english_in(str(v), allowed=allowed)] == [], path.name


def test_monitoring_reconciles_and_its_public_page_publishes_no_small_count(full_run) -> None:
    import re

    data, _ = full_run
    # reconciles with courses, targets complete
    assert pl.read_parquet(data / "assets" / "monitoring_status.parquet").height == 0
    public = (data / "reports" / "monitoring.html").read_text()
    internal = (data / "restricted" / "reports" / "monitoring.html").read_text()
    assert "INTERNAL – EXACT COUNTS" in internal and "INTERNAL" not in public
    persons = re.sub(r'<table class="files">.*?</table>', "", public, flags=re.S)
    assert not [c for c in re.findall(r"<td[^>]*>(.*?)</td>", persons) if re.fullmatch(r"[1-4]", c.strip())]
    assert cpr_like(public) == [] and cpr_like(internal) == []
    flows = pl.read_parquet(data / "assets" / "programme_monitoring.parquet")
    courses = pl.read_parquet(data / "assets" / "courses.parquet")
    assert flows.filter(pl.col("site") == "ALL")["new_starts"].sum() == courses.height
    report = (data / "reports" / "effect_report.html").read_text()
    assert '<section id="public-budget">' in report and "ILLUSTRATIVE prices" in report


SCREENSHOTS = Path(os.environ.get("CTI_SCREENSHOT_DIR", Path(__file__).resolve().parents[1] / "build" / "screenshots"))


@pytest.mark.parametrize(
    ("page", "must_have"),
    [
        ("reports/effect_report.html", {"sections": 10, "svgs": 12}),
        ("reports/steward_view.html", {"sections": 1, "svgs": 0}),
        ("restricted/reports/steward_view.html", {"sections": 1, "svgs": 0}),
        ("reports/monitoring.html", {"sections": 7, "svgs": 3}),
        ("restricted/reports/monitoring.html", {"sections": 7, "svgs": 5}),
    ],
)
def test_pages_render_in_headless_chromium(full_run, page: str, must_have: dict) -> None:
    """Each HTML page opens offline in Chromium with no console error, no failed load and no outside request."""
    from browser import chromium_path, render

    if chromium_path() is None:
        pytest.skip("chromium is not installed and scripts/setup_system.sh could not install it "
                    "(needs root or passwordless sudo and Debian's apt); see .venv/setup_system.log")
    data, _ = full_run
    shot = SCREENSHOTS / (page.replace("/", "__").removesuffix(".html") + ".png")
    rendered = render(data / page, shot)
    assert rendered.problems == [], rendered.problems
    dom = rendered.dom
    assert dom["externalRefs"] == []
    assert len(dom["sections"]) >= must_have["sections"], dom
    assert dom["visibleSvgs"] >= must_have["svgs"], dom  # plots have a real size on screen, not just markup
    assert dom["tables"] >= 1 and dom["textLength"] > 500, dom
    assert shot.exists() and shot.stat().st_size > 10_000  # a blank page compresses far below this


def test_one_site_quarter_can_be_rerun_with_who_and_what_tagged(full_run) -> None:
    import dagster as dg

    data, _ = full_run
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(data.parent), "CTI_DATA_DIR": str(data),
           "CTI_PSEUDONYM_KEY": CANARY_KEY, "GX_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-m", "pipelines.cli", "run", "--quarter", "2024Q3", "--site", "aarhus", "--ingest-only",
               "--user", "analyst-a"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "ingest: 1/1 submission partitions ok" in proc.stdout and "linkage_job" not in proc.stdout
    os.environ["DAGSTER_HOME"], old = str(data / "dagster_home"), os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"cti/user": "analyst-a"}))
    finally:
        os.environ.pop("DAGSTER_HOME") if old is None else os.environ.__setitem__("DAGSTER_HOME", old)
    assert len(runs) == 1 and runs[0].tags["cti/scope"] == "quarter=2024Q3 site=aarhus"
    assert runs[0].tags["dagster/partition"] == "2024-07-01|aarhus"
    bad = subprocess.run([*command[:3], "run", "--site", "nowhere"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "unknown site nowhere" in bad.stderr and "Traceback" not in bad.stderr
