"""Population-scale benchmark: every analysis stage timed against a raw scan measured in the same run.

Usage::

    .venv/bin/python scripts/bench.py                      # full scale: 5.9 M persons (generates the world once)
    .venv/bin/python scripts/bench.py --persons 20000 --staggered-units 2000 --no-pipeline   # small, as in make test

The mock world lives in ``$CTI_BENCH_DIR`` (default ``$CTI_DATA_DIR/bench/world``) and is reused when its
size and seed match. Each stage runs in its own child process, so its peak RSS (``wait4``) is its own. Prints
a table (stage, seconds, peak RSS GiB, rows, ratio to the raw scan) and the targets (measured / target), and
writes both as JSON to ``$CTI_DATA_DIR/bench/bench_<date>.json`` and ``bench_latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _layout(world: Path):
    """The world directory's layout (imported lazily: a stage's peak RSS should hold only what it uses)."""
    from pipelines.layout import Layout

    return Layout.at(world)

GIB = 1024**3
HEADLINE = ("self_support", "employed", "emergency_contacts")


# --- stages (each runs in a child process: `bench.py --stage NAME --work DIR`) ------------------------------


def _registers(world: Path) -> dict:
    import polars as pl

    from analysis.schema import REGISTERS

    layout = _layout(world)
    return {n: pl.scan_parquet(layout.register_files(n)) for n in REGISTERS}


def _participants(world: Path, persons: int, seed: int):
    import polars as pl

    from analysis.estimate import effects
    from pipelines.sources import MockRegisters

    part = MockRegisters(persons=persons, seed=seed).world().participants
    last = _registers(world)["employment"].select(pl.col("MAANED").max()).collect(engine="streaming").item()
    courses = part.filter(pl.col("start") <= last).select(
        person_id="PNR", start_date="start", site="site", delmaalgruppe="delmaalgruppe", completed="completed")
    return effects.participant_table(courses)


def stage_raw_scan(args, work: Path) -> int:
    """Baseline: read the cohort columns of every register year and sum one (no filter, no join, no write)."""
    import polars as pl

    from analysis.linkage.population import COHORT_COLUMNS

    regs, rows = _registers(args.world), 0
    for name, columns in COHORT_COLUMNS.items():
        # Sum PNR and take the maximum of every other column: each needed column is decoded. (Summing PNR
        # alone lets the projection drop the other columns, which makes a baseline that reads a third of
        # the data: 4.4 s instead of 11 s at full scale.)
        others = [pl.col(c).max().alias(f"max_{c}") for c in columns if c != "PNR"]
        out = regs[name].select(pl.len(), pl.col("PNR").cast(pl.Int64).sum(), *others).collect(engine="streaming")
        rows += out.item(0, 0)
    return rows


def stage_population_covariates(args, work: Path) -> int:
    """Per person-year covariates of the whole population, one year at a time, streamed to parquet."""
    import polars as pl

    from analysis.linkage.population import person_year_covariates

    regs = _registers(args.world)
    years = regs["population"].select(pl.col("AAR").unique()).collect(engine="streaming")["AAR"].sort().to_list()
    rows = 0
    (work / "covariates").mkdir(exist_ok=True)
    for year in years:
        frame = person_year_covariates(regs, year=int(year))
        frame.write_parquet(work / "covariates" / f"{year}.parquet", row_group_size=1_000_000)
        rows += frame.height
    return rows


def stage_candidate_pool(args, work: Path) -> int:
    """CEM pre-selection of comparison candidates from the covariates (participants + pool ids)."""
    import polars as pl

    from analysis.linkage.population import candidate_pool, transition_pool, without_transition

    participants = _participants(args.world, args.persons, args.seed)
    participants.write_parquet(work / "participants.parquet")
    regs = _registers(args.world)
    # as the outcome_panel asset: CEM candidates only for participants without a transition; everyone
    # discharged from a stay the month before a start enters the pool
    pool = candidate_pool(pl.scan_parquet(work / "covariates" / "*.parquet"), without_transition(regs, participants),
                          per_participant=args.per_participant, seed=args.seed)
    pool = pl.concat([
        participants.select(pl.col("person_id").cast(pl.Int64), participant=pl.lit(True)), pool,
        transition_pool(regs, participants).with_columns(participant=pl.lit(False)),
    ]).unique("person_id", keep="first").sort("person_id")
    pool.write_parquet(work / "pool.parquet")
    return pool.height


def stage_cohort_extraction(args, work: Path) -> int:
    """Register rows (all months) of participants + candidates: semi join on the id set, streamed to parquet."""
    import polars as pl

    from analysis.linkage.population import COHORT_COLUMNS, extract_cohort

    ids, regs, rows = pl.read_parquet(work / "pool.parquet"), _registers(args.world), 0
    for name, columns in COHORT_COLUMNS.items():
        path = work / f"cohort_{name}.parquet"
        extract_cohort(regs[name], ids, columns=columns).sink_parquet(path)
        rows += pl.scan_parquet(path).select(pl.len()).collect().item()
    return rows


def stage_pandas_cohort_extraction(args, work: Path) -> int:
    """Peer baseline, the obvious pandas way: read_parquet with an `in` filter per file, then merge."""
    import pandas as pd

    from analysis.linkage.population import COHORT_COLUMNS

    ids = pd.read_parquet(work / "pool.parquet", columns=["person_id"])
    wanted, rows = ids["person_id"].tolist(), 0
    for name, columns in COHORT_COLUMNS.items():
        frames = [pd.read_parquet(f, columns=list(columns), filters=[("PNR", "in", wanted)])
                  for f in _layout(args.world).register_files(name)]
        merged = pd.concat(frames).merge(ids, left_on="PNR", right_on="person_id", how="inner")
        rows += len(merged)
    return rows


def stage_matching(args, work: Path) -> int:
    """Monthly outcome panel of the cohort, then propensity + nearest-neighbour matching at each start month."""
    import polars as pl

    from analysis.estimate import matching
    from analysis.linkage import panel
    from pipelines.resources import CodeLists

    regs, ids = _registers(args.world), pl.read_parquet(work / "pool.parquet").select("person_id")
    last = regs["employment"].select(pl.col("MAANED").max()).collect(engine="streaming").item()
    codes = CodeLists()
    frame = panel.outcome_panel(regs, persons=ids.lazy(), first_month=date(2019, 1, 1), last_month=last,
                                dream_codes=codes.table("dream_codes"), hfaudd_levels=codes.table("hfaudd_levels"),
                                ).collect(engine="streaming")
    frame.write_parquet(work / "panel.parquet")
    participants = pl.read_parquet(work / "participants.parquet")
    persons = matching.person_attributes(regs["population"], ids)
    result = matching.match(frame, participants.select("person_id", "start_month"), persons)
    result.units.write_parquet(work / "units.parquet")
    result.balance.write_parquet(work / "balance.parquet")
    return result.units.height


def stage_did_event_study(args, work: Path) -> int:
    """Stacked panel, event study (person-clustered SEs, pre-trend test) and pooled DiD for the headline outcomes."""
    import polars as pl

    from analysis.estimate import effects, matching

    frame, units = pl.read_parquet(work / "panel.parquet"), pl.read_parquet(work / "units.parquet")
    participants = pl.read_parquet(work / "participants.parquet")
    rows, tables = 0, []
    for outcome in HEADLINE:
        stacked = matching.stacked_panel(frame.select("person_id", "month", outcome), units, outcomes=[outcome])
        matched = effects.matched_effects(stacked, participants, outcome)
        tables.append(matched.estimates)
        matched.event_study.to_frame().write_parquet(work / f"event_study_{outcome}.parquet")
        rows += stacked.height
    pl.concat(tables).write_parquet(work / "estimates.parquet")
    return rows


def stage_effect_recovery(args, work: Path) -> int:
    """Staggered ATT (stacked by start quarter) of the headline outcomes; matched DiD and truth beside it."""
    import polars as pl

    from analysis.estimate import effects

    frame, units = pl.read_parquet(work / "panel.parquet"), pl.read_parquet(work / "units.parquet")
    truth = json.loads(_layout(args.world).truth.read_text())["effects"]
    did = pl.read_parquet(work / "estimates.parquet").filter(pl.col("dimension") == "all")
    rows = []
    for outcome in HEADLINE:
        staggered = effects.staggered_effects(effects.cohort_panel(frame, units, outcome), outcome)
        pooled = staggered.to_frame().row(0, named=True)
        matched = did.filter(pl.col("outcome") == outcome).row(0, named=True)
        for design, row in (("matched_did", matched), ("staggered_att", pooled)):
            planted = truth[outcome]["att_months_12_24"]
            rows.append({"outcome": outcome, "design": design, "truth": planted, "estimate": row["estimate"],
                         "ci_lower": row["ci_lower"], "ci_upper": row["ci_upper"], "n_treated": row["n_treated"],
                         "covered": bool(row["ci_lower"] is not None and row["ci_lower"] <= planted <= row["ci_upper"])})
    (work / "recovery.json").write_text(json.dumps(rows))
    return len(rows)


def stage_staggered_att(args, work: Path) -> int:
    """Callaway & Sant'Anna on the generated panel (units x periods); the reference times are another stage."""
    from analysis.estimate.staggered import att_gt

    frame = _staggered_panel(args.staggered_units, args.staggered_periods)
    res = att_gt(frame, unit="id", period="year", cohort="first_treat", outcome="y", control_group="never_treated",
                 method="dr", covariates=["x"])
    res.aggregate("dynamic")
    return frame.height


def stage_staggered_reference(args, work: Path) -> int:
    """The same estimate with `differences` (a port of R did): the speed reference."""
    import warnings

    import numpy as np

    try:
        import differences
    except ImportError:  # a dev dependency; absent in a production install
        return -1
    pdf = _staggered_panel(args.staggered_units, args.staggered_periods).to_pandas()
    pdf["first_treat"] = pdf["first_treat"].replace(0, np.nan).astype(float)
    pdf = pdf.set_index(["id", "year"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = differences.ATTgt(data=pdf, cohort_column="first_treat")
        model.fit(formula="y ~ x", est_method="dr", control_group="never_treated", progress_bar=False)
        model.aggregate("event")
    return len(pdf)


def _staggered_panel(units: int, periods: int):
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(0)
    cohorts = np.arange(periods // 4, periods - 2, max(1, periods // 10))
    g = np.where(rng.random(units) < 0.5, 0, rng.choice(cohorts, units))
    x = rng.normal(size=units) + 0.2 * (g > 0)
    t = np.arange(1, periods + 1)
    effect = np.where((g[:, None] > 0) & (t[None, :] >= g[:, None]), 1.0 + 0.1 * (t[None, :] - g[:, None]), 0.0)
    y = x[:, None] * (1 + 0.05 * t[None, :]) + effect + rng.normal(size=(units, periods))
    return pl.DataFrame({"id": np.repeat(np.arange(units), periods), "year": np.tile(t, units),
                         "first_treat": np.repeat(g, periods), "y": y.ravel(), "x": np.repeat(x, periods)})


def stage_report(args, work: Path) -> int:
    """Render the effect report from the stage outputs (disclosure control and plots included)."""
    import polars as pl

    from analysis.publish import effect_report

    es = pl.concat([pl.read_parquet(p) for p in sorted(work.glob("event_study_*.parquet"))], how="diagonal_relaxed")
    inputs = effect_report.ReportInputs(
        estimates=pl.read_parquet(work / "estimates.parquet"), event_study=es, matched_means=pl.DataFrame(),
        balance=pl.read_parquet(work / "balance.parquet"), group_time=pl.DataFrame(), aggregates=pl.DataFrame(),
        before_after=pl.DataFrame(), provenance=pl.DataFrame(), headline_outcomes=HEADLINE,
    )
    page = effect_report.render_effect_report(inputs)
    (work / "effect_report.html").write_text(page)
    return len(page)


def stage_whole_pipeline(args, work: Path) -> int:
    """`cti run` on the generated world: ingest of every inbox file to the reports, on a fresh instance."""
    import shutil

    run_dir = work / "pipeline"
    run_dir.mkdir(exist_ok=True)
    for name in ("registers", "inbox", "world", "restricted"):  # the generated world, shared read-only
        target = run_dir / name
        if not target.exists():
            shutil.copytree(args.world / name, target, copy_function=os.link)
    env = {**os.environ, "CTI_DATA_DIR": str(run_dir), "CTI_PSEUDONYM_KEY": "bench-key-" + "0" * 40,
           "CTI_PERSONS": str(args.persons), "CTI_SEED": str(args.seed)}
    env.pop("DAGSTER_HOME", None)
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    print(proc.stdout, file=sys.stderr, flush=True)  # per-job times, for the driver's log
    timings = [line.strip() for line in proc.stdout.splitlines() if line.rstrip().endswith(" s)") or "done in" in line]
    return int((run_dir / "reports" / "effect_report.html").exists()), timings


STAGES = {
    "raw_scan": stage_raw_scan,
    "population_covariates": stage_population_covariates,
    "candidate_pool": stage_candidate_pool,
    "cohort_extraction": stage_cohort_extraction,
    "pandas_cohort_extraction": stage_pandas_cohort_extraction,
    "matching": stage_matching,
    "did_event_study": stage_did_event_study,
    "effect_recovery": stage_effect_recovery,
    "staggered_att": stage_staggered_att,
    "staggered_reference": stage_staggered_reference,
    "report": stage_report,
    "whole_pipeline": stage_whole_pipeline,
}


# --- driver -------------------------------------------------------------------------------------------------


def _child(args) -> None:
    work = Path(args.work)
    started = time.perf_counter()
    rows = STAGES[args.stage](args, work)
    log = None
    if isinstance(rows, tuple):  # (rows, log): the whole pipeline also reports its per-job times
        rows, log = rows
    json.dump({"seconds": time.perf_counter() - started, "rows": rows, **({"log": log} if log else {})}, sys.stdout)


def _tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of ``root_pid`` and all its descendants, summed, from /proc (0 where /proc is absent)."""
    parents: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
            pid, ppid, pages = int(entry.name), int(fields[1]), int(fields[21])
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
        parents.setdefault(ppid, []).append(pid)
        rss[pid] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(parents.get(pid, ()))
    return total


class _TreeMemory(threading.Thread):
    """Samples the summed RSS of a process tree every ``interval`` seconds; ``peak`` is the largest sum seen.

    ``ru_maxrss`` of the waited-for child is the largest single process in the tree; processes that run side
    by side (outcome workers) add up, so the whole-pipeline memory target is judged on this sum.
    """

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.peak = max(self.peak, _tree_rss_bytes(self.pid))


def _run_stage(name: str, args, work: Path) -> dict:
    """Run one stage in a child process; its peak RSS is the child's own (and its children's, for the pipeline)."""
    cmd = [sys.executable, __file__, "--stage", name, "--work", str(work), "--world", str(args.world),
           "--persons", str(args.persons), "--seed", str(args.seed), "--per-participant", str(args.per_participant),
           "--staggered-units", str(args.staggered_units), "--staggered-periods", str(args.staggered_periods)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        sampler = _TreeMemory(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        sampler.done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode(), err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        return {"stage": name, "error": errors.strip().splitlines()[-1] if errors.strip() else "failed", "log": errors[-4000:]}
    result = json.loads(text.strip().splitlines()[-1])
    rss = usage.ru_maxrss * 1024 / GIB
    return {"stage": name, "seconds": result["seconds"], "peak_rss_gib": rss, "peak_tree_rss_gib": sampler.peak / GIB,
            "rows": result["rows"], **({"log": result["log"]} if "log" in result else {})}


def _targets(by: dict) -> list[dict]:
    def get(stage, key="seconds"):
        return by.get(stage, {}).get(key)

    raw = get("raw_scan")
    out = []

    def add(name, measured, target, unit, ok):
        out.append({"name": name, "measured": None if measured is None else round(measured, 3), "target": target,
                    "unit": unit, "met": None if measured is None else bool(ok(measured))})

    if raw:
        ce = get("cohort_extraction")
        add("cohort extraction time / raw scan", ce / raw if ce else None, 1.5, "ratio", lambda m: m <= 1.5)
        add("population covariates time / raw scan", get("population_covariates") / raw if get("population_covariates") else None,
            10.0, "ratio", lambda m: m <= 10)
    add("cohort extraction peak RSS", get("cohort_extraction", "peak_rss_gib"), 2.0, "GiB", lambda m: m <= 2)
    add("population covariates peak RSS", get("population_covariates", "peak_rss_gib"), 8.0, "GiB", lambda m: m <= 8)
    pandas, polars_ = get("pandas_cohort_extraction"), get("cohort_extraction")
    add("pandas / polars cohort extraction time", pandas / polars_ if pandas and polars_ else None, 3.0, "x faster",
        lambda m: m >= 3)
    ours, ref = get("staggered_att"), get("staggered_reference")
    ref_ok = by.get("staggered_reference", {}).get("rows", -1) > 0
    add("staggered ATT time / differences", ours / ref if ours and ref and ref_ok else None, 2.0, "ratio", lambda m: m <= 2)
    add("whole pipeline time", get("whole_pipeline"), 600.0, "s", lambda m: m < 600)
    add("whole pipeline peak RSS (all processes summed)", get("whole_pipeline", "peak_tree_rss_gib"), 12.0, "GiB",
        lambda m: m <= 12)
    return out


def main() -> None:
    """Parse arguments, then run the stages (driver) or one stage (child)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", default="full", help="population size or 'full' (5.9 million)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-participant", type=int, default=20, help="CEM candidates per participant")
    parser.add_argument("--staggered-units", type=int, default=200_000)
    parser.add_argument("--staggered-periods", type=int, default=40)
    parser.add_argument("--no-pipeline", action="store_true", help="skip the whole-pipeline stage")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas peer baseline")
    parser.add_argument("--stages", default="", help="comma-separated subset of stages (default: all)")
    parser.add_argument("--world", default="", help="mock-world directory (default $CTI_BENCH_DIR or $CTI_DATA_DIR/bench/world)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.persons = 5_900_000 if str(args.persons).lower() == "full" else int(str(args.persons).replace("_", ""))
    data_dir = Path(os.environ.get("CTI_DATA_DIR", ROOT / "data")).resolve()
    args.world = Path(args.world or os.environ.get("CTI_BENCH_DIR") or data_dir / "bench" / "world").resolve()
    if args.stage:
        _child(args)
        return

    from pipelines import world
    from pipelines.settings import MockSource, Settings

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    settings = Settings(_layout(args.world), MockSource(persons=args.persons, seed=args.seed))
    started = time.perf_counter()
    print(world.generate(settings, persons=args.persons, seed=args.seed), flush=True)
    generated = time.perf_counter() - started
    requested = [s for s in (args.stages.split(",") if args.stages else STAGES) if s]
    unknown = sorted(set(requested) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {unknown}; stages: {', '.join(STAGES)}")
    names = [s for s in STAGES if s in requested]  # later stages read what earlier ones wrote: keep the order
    if args.no_pipeline and "whole_pipeline" in names:
        names.remove("whole_pipeline")
    if args.no_pandas and "pandas_cohort_extraction" in names:
        names.remove("pandas_cohort_extraction")
    results = []
    with tempfile.TemporaryDirectory(prefix="cti-bench-", dir=data_dir if data_dir.exists() else None) as tmp:
        for name in names:
            print(f"  {name} ...", flush=True)
            results.append(_run_stage(name, args, Path(tmp)))
            if "error" in results[-1]:
                print(f"  {name} FAILED: {results[-1]['error']}", flush=True)
        recovery = json.loads((Path(tmp) / "recovery.json").read_text()) if (Path(tmp) / "recovery.json").exists() else []
    by = {r["stage"]: r for r in results if "error" not in r}
    raw = by.get("raw_scan", {}).get("seconds")
    for r in results:
        r["ratio_to_raw_scan"] = round(r["seconds"] / raw, 3) if raw and "seconds" in r else None
    targets = _targets(by)
    print(f"\n{'stage':<26}{'seconds':>10}{'peak RSS GiB':>14}{'rows':>16}{'x raw scan':>12}")
    for r in results:
        if "error" in r:
            print(f"{r['stage']:<26}  FAILED: {r['error']}")
            continue
        ratio = "" if r["ratio_to_raw_scan"] is None else f"{r['ratio_to_raw_scan']:.2f}"
        print(f"{r['stage']:<26}{r['seconds']:>10.1f}{r['peak_rss_gib']:>14.2f}{r['rows']:>16,}{ratio:>12}")
        for line in r.get("log", ()):
            print(f"    {line}")
    if recovery:
        print(f"\n{'planted-effect recovery':<34}{'truth':>9}{'estimate':>10}{'95% CI':>22}{'n treated':>11}  covered")
        for r in recovery:
            ci = f"[{r['ci_lower']:.4f}, {r['ci_upper']:.4f}]" if r["ci_lower"] is not None else "n/a"
            print(f"{r['outcome'] + ' ' + r['design']:<34}{r['truth']:>9.4f}{r['estimate']:>10.4f}{ci:>22}"
                  f"{r['n_treated']:>11,}  {'yes' if r['covered'] else 'NO'}")
        targets.append({"name": "planted effect inside the 95% CI (headline x design)", "unit": "cells",
                        "measured": sum(r["covered"] for r in recovery), "target": len(recovery),
                        "met": all(r["covered"] for r in recovery)})
    print(f"\n{'target':<42}{'measured':>10}{'target':>10}  unit      met")
    for t in targets:
        measured = "n/a" if t["measured"] is None else f"{t['measured']:.2f}"
        met = {True: "yes", False: "NO", None: "-"}[t["met"]]
        print(f"{t['name']:<42}{measured:>10}{t['target']:>10}  {t['unit']:<9} {met}")
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1),
                    "platform": platform.platform(), "python": platform.python_version()},
        "settings": {"persons": args.persons, "seed": args.seed, "per_participant": args.per_participant,
                     "staggered_units": args.staggered_units, "staggered_periods": args.staggered_periods,
                     "world": str(args.world), "world_seconds": round(generated, 1)},
        "stages": results,
        "targets": targets,
        "recovery": recovery,
    }
    out = data_dir / "bench"
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    (out / f"bench_{date.today().isoformat()}.json").write_text(text)
    (out / "bench_latest.json").write_text(text)
    print(f"\nwritten: {out / 'bench_latest.json'}")
    if any("error" in r for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
