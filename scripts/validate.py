"""Monte Carlo validation of the effect estimators at the real programme's size.

Usage::

    .venv/bin/python scripts/validate.py                      # 100 replications x 6 scenarios, 5.9 M persons
    .venv/bin/python scripts/validate.py --replications 10 --scenarios default,placebo
    .venv/bin/python scripts/validate.py --smoke              # the tiny run the test suite makes

Each replication is one world seed: the population (``build_world``) is drawn once and every scenario
(a set of ``WorldConfig`` overrides: effects, dip, recovery) runs on the same people and participants, so
scenarios differ only in what they change (common random numbers). For each scenario the analysis panel is
built straight from the world (``analysis.mockworld.panel``: the registers' data-generating process and the
linkage's panel definitions, without ingest or Dagster): participants and every person discharged from a
stay in the month before one of their start months (the pipeline's transition pool). Scenarios that differ
only in the planted effect share the pool's panel and the match, because neither reads a participant's
months from the start on (checked: the participants' pre-start rows must be identical).

The estimators are the pipeline's own (``analysis.estimate``): the matched DiD with its event study and
the staggered ATT, each against the realised effect on all participants in event months 12..24
(``analysis.mockworld.effects_truth``). Replications run in ``--workers`` processes; each seed's records are
written as they finish under ``$CTI_DATA_DIR/validate/runs/<settings hash>/``, so an interrupted run resumes.

Prints, per scenario, design and headline outcome: bias, bias as share of the effect, RMSE, 95 % CI
coverage with its Monte Carlo standard error (of the scenario's expected effect, the effect on participants
as the world draws them, which is what the intervals estimate; the coverage of each world's own realised
effect beside it, see :func:`summarise`), mean CI width, rejection rate of "no effect" (size under the
placebo, power otherwise), the pre-trend test's rejection rate, balance (max |SMD|) and the unmatched share;
then the targets. Writes ``$CTI_DATA_DIR/validate/validate_<date>.json`` and ``validate_latest.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import platform
import sys
import time
import traceback
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEADLINE = ("self_support", "employed", "emergency_contacts")
#: The designs validated (the report's two effect estimates).
DESIGNS = ("matched_did", "staggered_att")
#: Scenarios: overrides of the base ``WorldConfig`` mapping (``WorldConfig.from_mapping``; effects nested).
SCENARIOS: dict[str, dict] = {
    "default": {},
    "placebo": {"effects": {"self_support_pp": 0.0, "employed_pp": 0.0, "emergency_rel": 0.0}},
    "reversed": {"effects": {"self_support_pp": -0.08, "employed_pp": -0.04, "emergency_rel": 0.30}},
    "strong_recovery": {"recovery_share": 0.9},
    "deep_dip": {"dip_logit": 2.4},
    # Effects concentrated in the groups that are hardest to match (Greenlandic and other backgrounds) and in
    # completers: the ATT of everyone and the ATT of an easy-to-match subset part ways.
    "heterogeneous": {"effects": {"completer_multiplier": 1.3, "non_completer_multiplier": 0.0,
                                  "delmaalgruppe_multiplier": {"OVG": 0.6, "PSY": 0.3, "FAE": 0.0, "GRL": 3.0,
                                                               "AKB": 2.0, "UNG": 1.5}}},
}
#: The planted-effect scenario whose truth scales the placebo's bias (its own effect is zero).
REFERENCE_SCENARIO = "default"
#: Done-when bands of issue #20.
BIAS_SHARE_MAX = 0.10
COVERAGE_BAND = (0.92, 0.98)
SIZE_BAND = (0.03, 0.07)
#: Panel months: 36 months of history before the first start (2024-01) to the reference date.
PANEL_FIRST_MONTH = date(2021, 1, 1)


# --- one replication (runs in a worker process) -------------------------------------------------------------


def _config_tables() -> dict:
    from pipelines.configuration import ConfigDir

    tables = ConfigDir()  # the packaged configuration: the sites and code lists the mock world is built on
    return {name: tables.table(name) for name in ("sites", "delmaalgrupper", "dream_codes", "hfaudd_levels")}


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            and key != "delmaalgruppe_multiplier" and key != "site_capacity_overrides" else value
    return out


def scenario_configs(base: dict, scenarios: dict[str, dict]) -> dict:
    """``WorldConfig`` per scenario: each scenario's overrides on top of the base mapping (validated)."""
    from analysis.mockworld import WorldConfig

    out = {}
    for name, override in scenarios.items():
        try:
            out[name] = WorldConfig.from_mapping(_merge(base, override))
        except ValueError as error:
            raise ValueError(f"scenario {name!r}: {error}") from None
    return out


def _without(config, fields: tuple[str, ...]) -> str:
    mapping = config.to_mapping()
    return json.dumps({k: v for k, v in mapping.items() if k not in fields}, sort_keys=True)


def replicate(seed: int, settings: dict) -> list[dict]:
    """All scenarios, designs and outcomes of one world seed: one record per (scenario, design, outcome)."""
    import dataclasses

    import numpy as np
    import polars as pl

    from analysis import mockworld
    from analysis.estimate import effects
    from analysis.mockworld import panel as world_panel

    tables = _config_tables()
    configs = {name: dataclasses.replace(cfg, seed=seed)
               for name, cfg in scenario_configs(settings["base"], settings["scenarios"]).items()}
    worlds: dict[str, object] = {}  # people key -> world (build_world once per distinct population)
    # outcome model without the effects -> the pool's panel, the match, the participants' pre-start rows
    shared: dict[str, dict] = {}
    records = []
    for name, config in configs.items():
        started = time.perf_counter()
        people = _without(config, mockworld.OUTCOME_MODEL_FIELDS)
        if people not in worlds:
            worlds[people] = mockworld.build_world(config, **tables)
        world = mockworld.with_outcome_model(worlds[people], config)
        part = world.participants
        ended = pl.col("end") <= config.reference_date  # an ongoing course has no completion yet, as reported
        courses = part.select(person_id="PNR", start_date="start", site="site", delmaalgruppe="delmaalgruppe",
                              completed=pl.when(ended).then(pl.col("completed")))
        participants = effects.participant_table(courses)
        last = date(config.reference_date.year, config.reference_date.month, 1)
        panel_kw = {"first_month": PANEL_FIRST_MONTH, "last_month": last,
                    "hfaudd_levels": tables["hfaudd_levels"]}
        ids = part["PNR"].to_numpy()
        own = world_panel.outcome_panel(world, ids, stream=2, **panel_kw)
        dgp = _without(config, ("effects",))
        if dgp not in shared:
            pool_ids = np.setdiff1d(world_panel.transition_pool(world, participants["start_month"]), ids)
            pool = world_panel.outcome_panel(world, pool_ids, stream=1, **panel_kw)
            persons = world_panel.person_attributes(world, np.concatenate([ids, pool_ids]))
            panel = pool.merge_sorted(own, key="person_id")  # both by person and month, persons disjoint
            design = _match(panel, participants, persons)
            keep = design.units["person_id"].unique()
            shared[dgp] = {"pool": pool.filter(pl.col("person_id").is_in(keep.implode())), "design": design,
                           "pre": _pre_rows(own, participants), "pool_persons": pool_ids.size}
        else:
            if not _pre_rows(own, participants).equals(shared[dgp]["pre"]):
                raise RuntimeError(f"scenario {name}: participants' pre-start rows differ from the scenario "
                                   "that made the shared match; the effect must not reach before the start")
        state = shared[dgp]
        panel = state["pool"].merge_sorted(own, key="person_id")
        truth = mockworld.effects_truth(world)
        for row in _headline(panel, state["design"], participants, outcomes=HEADLINE):
            analysed = mockworld.effects_truth(world, persons=row.pop("analysed"))
            outcome = row["outcome"]
            records.append({
                "seed": seed, "scenario": name, **row,
                "truth": truth[outcome]["att_months_12_24"],
                "truth_analysed": analysed[outcome]["att_months_12_24"],
                "participants": part.height, "pool_persons": state["pool_persons"],
                "seconds": round(time.perf_counter() - started, 2),
            })
    return records


def _match(panel, participants, persons):
    from analysis.estimate import matching

    return matching.match(panel, participants.select("person_id", "start_month"), persons)


def _headline(panel, design, participants, *, outcomes):
    """Per outcome: the matched DiD (with its event study's pre-trend test) and the staggered ATT."""
    import polars as pl

    from analysis.estimate import did, effects, matching, sensitivity

    treated = design.units.filter(pl.col("treated") == 1)["person_id"].unique().to_numpy()
    unmatched = design.unmatched.height / max(design.unmatched.height + treated.size, 1)
    smd = float(design.balance["smd_after"].abs().max())
    rows = []
    for outcome in outcomes:
        sub = panel.select("person_id", "month", outcome)
        stacked = matching.stacked_panel(sub, design.units, outcomes=[outcome])
        # the report's event study and pre-trend tests (effects.matched_effects): relative to months -15..-13,
        # the months before the dip tested, the transition month left out
        study = did.event_study(stacked, outcome, reference=sensitivity.REFERENCE_MONTHS,
                                pretrend=sensitivity.PRE_DIP_MONTHS, exclude=(sensitivity.TRANSITION_MONTH,))
        pooled = did.pooled_did(stacked, outcome, post=effects.POST_WINDOW)
        rows.append({"design": "matched_did", "outcome": outcome, **_pick(pooled),
                     "pretrend_p": sensitivity.headline_pretrend(study)[2],
                     "pretrend_monthly_p": study.pretrend_p,
                     "max_abs_smd": smd, "unmatched_share": unmatched, "analysed": treated})
        row = effects.staggered_effects(effects.cohort_panel(sub, design.units, outcome), outcome)
        rows.append({"design": "staggered_att", "outcome": outcome, **_pick(row), "pretrend_p": None,
                     "max_abs_smd": smd, "unmatched_share": unmatched, "analysed": treated})
    return rows


def _pick(row) -> dict:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k, None)
    return {k: get(k) for k in ("estimate", "se", "ci_lower", "ci_upper", "n_treated", "mde")}


def _pre_rows(own, participants):
    """Participants' panel rows before their start month (what the match reads of them)."""
    import polars as pl

    return own.join(participants.select("person_id", "start_month"), on="person_id", how="inner",
                    validate="m:1").filter(pl.col("month") < pl.col("start_month")).drop("start_month")


# --- Monte Carlo summary ------------------------------------------------------------------------------------


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _sd(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _rejected(rows: list[dict], key: str, level: float = 0.05) -> float | None:
    """Share of ``rows`` whose p-value ``key`` is below ``level`` (None when no row has one)."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return _mean([float(p < level) for p in values]) if values else None


def summarise(records: list[dict], /) -> list[dict]:
    """One cell per (scenario, design, outcome): the Monte Carlo figures of its replications.

    ``bias`` is the mean of estimate - truth (each replication's own realised ATT on all participants),
    ``bias_share`` divides it by the mean truth (the placebo's by the reference scenario's). ``coverage``
    is the share of 95 % CIs that contain the scenario's expected effect (the mean of the replications'
    realised ATTs: the effect on participants drawn as the world draws them, which is what a standard
    error that counts the participants as a sample estimates) with its Monte Carlo standard error;
    ``coverage_realised`` the share that contain each replication's own realised ATT (conservative by
    construction when effects differ between participants: that ATT moves with the very participants the
    estimate is computed from; the sample- against population-ATT distinction of Imbens 2004),
    ``truth_sd`` the SD of the realised ATTs; ``rejection`` the share that exclude 0 (size where the
    effect is 0, power elsewhere), ``pretrend_rejection`` the share of
    the report's pre-trend tests (the yearly means before the dip, the estimates' ``pretrend_p``) with
    p < 0.05 and ``pretrend_monthly_rejection`` that of the monthly test before the dip, ``se_ratio`` the
    mean reported SE over the SD of the estimates.
    """
    cells: dict[tuple, list[dict]] = {}
    for r in records:
        cells.setdefault((r["scenario"], r["design"], r["outcome"]), []).append(r)
    reference = {}
    for (scenario, design, outcome), rows in cells.items():
        if scenario == REFERENCE_SCENARIO:
            reference[(design, outcome)] = _mean([r["truth"] for r in rows])
    out = []
    for (scenario, design, outcome), rows in sorted(cells.items()):
        ok = [r for r in rows if r["estimate"] is not None and r["ci_lower"] is not None]
        err = [r["estimate"] - r["truth"] for r in ok]
        truth = _mean([r["truth"] for r in rows])
        scale = truth if truth and abs(truth) > 1e-12 else reference.get((design, outcome))
        bias, n = _mean(err), len(ok)
        covered = _mean([float(r["ci_lower"] <= truth <= r["ci_upper"]) for r in ok]) if ok else None
        realised = _mean([float(r["ci_lower"] <= r["truth"] <= r["ci_upper"]) for r in ok])
        rejected = _mean([float(not r["ci_lower"] <= 0.0 <= r["ci_upper"]) for r in ok])
        sd = _sd([r["estimate"] for r in ok])
        out.append({
            "scenario": scenario, "design": design, "outcome": outcome, "replications": len(rows),
            "estimated": n,
            "truth": truth, "truth_analysed": _mean([r["truth_analysed"] for r in ok]),
            "mean_estimate": _mean([r["estimate"] for r in ok]),
            "bias": bias, "bias_mc_se": (_sd(err) / math.sqrt(n)) if n > 1 else None,
            "bias_share": bias / abs(scale) if bias is not None and scale else None,
            "bias_vs_analysed": _mean([r["estimate"] - r["truth_analysed"] for r in ok]),
            "rmse": math.sqrt(_mean([e * e for e in err])) if err else None,
            "coverage": covered, "coverage_mc_se": math.sqrt(covered * (1 - covered) / n) if n else None,
            "coverage_realised": realised, "truth_sd": _sd([r["truth"] for r in rows]),
            "ci_width": _mean([r["ci_upper"] - r["ci_lower"] for r in ok]),
            "rejection": rejected, "rejection_mc_se": math.sqrt(rejected * (1 - rejected) / n) if n else None,
            "se_ratio": _mean([r["se"] for r in ok]) / sd if sd else None,
            "pretrend_rejection": _rejected(ok, "pretrend_p"),
            "pretrend_monthly_rejection": _rejected(ok, "pretrend_monthly_p"),
            "max_abs_smd": _mean([r["max_abs_smd"] for r in ok if r.get("max_abs_smd") is not None]),
            "unmatched_share": _mean([r["unmatched_share"] for r in ok
                                      if r.get("unmatched_share") is not None]),
            "n_treated": _mean([r["n_treated"] for r in ok]),
            "mde": _mean([r["mde"] for r in ok if r.get("mde") is not None]),
            "seconds": _mean([r["seconds"] for r in rows]),
        })
    return out


def targets(cells: list[dict], /) -> list[dict]:
    """Return the done-when targets of issue #20: ``name``, ``measured``, ``target``, ``unit``, ``met`` each.

    Per scenario, design and outcome: |bias| as share of the effect (the placebo's against the reference
    scenario's effect) and the 95 % CI coverage of the scenario's expected effect; per design and outcome
    of the placebo: the rejection rate.
    The rejection rates of the report's pre-trend test (yearly means before the dip) and of the monthly one
    per outcome, pooled over one scenario per pre-period (cells with the same ``pre_key``, i.e. scenarios
    that differ only in the planted effect, share their pre-periods, so they count once).
    """
    out = []

    def add(name, measured, target, unit, ok):
        out.append({"name": name, "measured": None if measured is None else round(measured, 4),
                    "target": target, "unit": unit, "met": None if measured is None else bool(ok(measured))})

    for c in cells:
        where = f"{c['scenario']} / {c['design']} / {c['outcome']}"
        share = None if c["bias_share"] is None else abs(c["bias_share"])
        add(f"|bias| / effect: {where}", share, BIAS_SHARE_MAX, "share", lambda m: m <= BIAS_SHARE_MAX)
        add(f"95% CI coverage of the expected effect: {where}", c["coverage"], list(COVERAGE_BAND), "share",
            lambda m: COVERAGE_BAND[0] <= m <= COVERAGE_BAND[1])
        if c["truth"] is not None and abs(c["truth"]) < 1e-12:
            add(f"rejection under no effect (size): {where}", c["rejection"], list(SIZE_BAND), "share",
                lambda m: SIZE_BAND[0] <= m <= SIZE_BAND[1])
    pooled: dict[tuple, list] = {}
    seen: set[tuple] = set()
    for c in sorted(cells, key=lambda c: c["scenario"]):
        if c["pretrend_rejection"] is None:
            continue
        group = (c["design"], c["outcome"], c.get("pre_key", c["scenario"]))
        if group in seen:
            continue
        seen.add(group)
        for test, key in (("", "pretrend_rejection"), ("monthly ", "pretrend_monthly_rejection")):
            if c.get(key) is not None:
                pooled.setdefault((test, c["design"], c["outcome"]), []).append((c[key], c["estimated"]))
    for (test, design, outcome), parts in sorted(pooled.items()):
        n = sum(k for _, k in parts)
        rate = sum(r * k for r, k in parts) / n if n else None
        add(f"{test}pre-trend test size: {design} / {outcome} ({n} tests)", rate, list(SIZE_BAND), "share",
            lambda m: SIZE_BAND[0] <= m <= SIZE_BAND[1])
    return out


# --- driver -------------------------------------------------------------------------------------------------


def _run_seed(task: tuple[int, dict, str]) -> tuple[int, list[dict] | None, str | None, float]:
    seed, settings, out = task
    started = time.perf_counter()
    try:
        records = replicate(seed, settings)
    except Exception:  # report the seed and carry on; the summary counts what finished
        return seed, None, traceback.format_exc(), time.perf_counter() - started
    Path(out, f"seed_{seed}.json").write_text(json.dumps(records))
    return seed, records, None, time.perf_counter() - started


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _percent(value) -> str:
    return _fmt(None if value is None else 100 * value, ".1f")


def print_table(cells: list[dict], /) -> None:
    """Print the per-cell Monte Carlo table."""
    print(f"{'scenario':<16}{'design':<15}{'outcome':<19}{'R':>4}{'truth':>9}{'bias':>9}{'bias%':>7}"
          f"{'rmse':>8}{'cover':>7}{'±mc':>6}{'real.':>7}{'width':>8}{'reject':>8}{'se/sd':>7}{'pretr':>7}{'month':>7}"
          f"{'smd':>6}{'unm%':>6}")
    for c in cells:
        print(f"{c['scenario']:<16}{c['design']:<15}{c['outcome']:<19}{c['estimated']:>4}"
              f"{_fmt(c['truth'], '.4f'):>9}{_fmt(c['bias'], '.4f'):>9}{_percent(c['bias_share']):>7}"
              f"{_fmt(c['rmse'], '.4f'):>8}{_fmt(c['coverage'], '.3f'):>7}"
              f"{_fmt(c['coverage_mc_se'], '.3f'):>6}{_fmt(c.get('coverage_realised'), '.3f'):>7}"
              f"{_fmt(c['ci_width'], '.4f'):>8}"
              f"{_fmt(c['rejection'], '.3f'):>8}{_fmt(c['se_ratio'], '.2f'):>7}"
              f"{_fmt(c['pretrend_rejection'], '.3f'):>7}{_fmt(c['pretrend_monthly_rejection'], '.3f'):>7}"
              f"{_fmt(c['max_abs_smd'], '.3f'):>6}{_percent(c['unmatched_share']):>6}")


def markdown_table(cells: list[dict], /) -> str:
    """Return the README table: one row per scenario, design and outcome."""
    lines = ["| scenario | design | outcome | truth (SD over worlds) | bias (% of effect) | RMSE "
             "| 95 % CI coverage of the expected effect ± MC s.e. | of the realised effect | CI width "
             "| rejects 0 | SE / SD | pre-trend rejects (yearly means / monthly) | max \\|SMD\\| "
             "| unmatched |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        share = "n/a" if c["bias_share"] is None else f"{100 * c['bias_share']:+.1f} %"
        pre = ("" if c["pretrend_rejection"] is None
               else f"{c['pretrend_rejection']:.3f} / {_fmt(c['pretrend_monthly_rejection'], '.3f')}")
        lines.append(
            f"| {c['scenario']} | {c['design']} | {c['outcome']} | {_fmt(c['truth'], '.4f')} "
            f"({_fmt(c.get('truth_sd'), '.4f')}) "
            f"| {_fmt(c['bias'], '+.4f')} ({share}) | {_fmt(c['rmse'], '.4f')} "
            f"| {_fmt(c['coverage'], '.3f')} ± {_fmt(c['coverage_mc_se'], '.3f')} "
            f"| {_fmt(c.get('coverage_realised'), '.3f')} "
            f"| {_fmt(c['ci_width'], '.4f')} "
            f"| {_fmt(c['rejection'], '.3f')} | {_fmt(c['se_ratio'], '.2f')} | {pre} "
            f"| {_fmt(c['max_abs_smd'], '.3f')} | {_percent(c['unmatched_share'])} % |")
    return "\n".join(lines)


def print_targets(goals: list[dict], /) -> None:
    """Print how many targets are met per criterion, and each one that is not."""
    kinds: dict[str, list[dict]] = {}
    for t in goals:
        kinds.setdefault(t["name"].split(":")[0], []).append(t)
    met = sum(bool(t["met"]) for t in goals)
    print(f"\ntargets met: {met} of {len(goals)}")
    for kind, rows in kinds.items():
        print(f"  {kind}: {sum(bool(t['met']) for t in rows)} of {len(rows)}")
        for t in rows:
            if t["met"] is False:
                where = t["name"].split(": ", 1)[-1]
                print(f"      not met: {where}: {t['measured']} (target {t['target']})")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replications", type=int, default=100, help="world seeds per scenario")
    parser.add_argument("--first-seed", type=int, default=1_000, help="seed of the first replication")
    parser.add_argument("--persons", default="5900000", help="population size of each world ('full' = 5.9 M)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated scenario names, or a JSON file {name: WorldConfig overrides}")
    parser.add_argument("--base", default="", help="JSON file of WorldConfig settings under every scenario")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--from-run", default="", help="summarise the replications stored in this run "
                        "directory (validate/runs/<key>) with the current summary code; run nothing")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run (the test suite's): 2 replications, 60,000 persons, two scenarios")
    args = parser.parse_args(argv)
    if args.smoke:
        args.replications, args.persons, args.workers = 2, "60000", 1
        if args.scenarios == ",".join(SCENARIOS):
            args.scenarios = "default,placebo"
    full = str(args.persons).lower() == "full"
    args.persons = 5_900_000 if full else int(str(args.persons).replace("_", ""))
    if args.replications < 1 or args.workers < 1:
        parser.error("--replications and --workers must be at least 1")
    if args.scenarios.endswith(".json"):
        args.scenario_map = json.loads(Path(args.scenarios).read_text())
    else:
        unknown = [s for s in args.scenarios.split(",") if s not in SCENARIOS]
        if unknown:
            parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)} (or a JSON file)")
        args.scenario_map = {s: SCENARIOS[s] for s in args.scenarios.split(",")}
    base = json.loads(Path(args.base).read_text()) if args.base else {}
    args.base_map = {**base, "persons": args.persons}
    try:
        args.configs = scenario_configs(args.base_map, args.scenario_map)  # validate before any work
    except ValueError as error:
        parser.error(str(error))
    return args


def _replicate_all(seeds: list[int], settings: dict, run_dir: Path, workers: int) -> tuple[list, list, list]:
    """Run the seeds not yet on disk; return every record, the failures and the seconds per seed."""
    records, todo = [], []
    for seed in seeds:
        done = run_dir / f"seed_{seed}.json"
        if done.exists():
            records += json.loads(done.read_text())
        else:
            todo.append(seed)
    print(f"{len(seeds)} replications x {len(settings['scenarios'])} scenarios at "
          f"{settings['base']['persons']:,} persons; {len(seeds) - len(todo)} already done in {run_dir}; "
          f"{workers} worker(s)", flush=True)
    for name in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")  # one thread per worker; spawned workers inherit it before imports
    tasks = [(seed, settings, str(run_dir)) for seed in todo]
    pool = multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=10) if workers > 1 else None
    results = pool.imap_unordered(_run_seed, tasks) if pool else map(_run_seed, tasks)
    started, failures, seconds = time.perf_counter(), [], []
    for i, (seed, rows, error, took) in enumerate(results, start=1):
        if error:
            failures.append({"seed": seed, "error": error})
            print(f"  seed {seed} FAILED:\n{error}", flush=True)
            continue
        records += rows
        seconds.append(took)
        elapsed = time.perf_counter() - started
        print(f"  seed {seed} done in {took:.0f} s ({i}/{len(todo)}; {elapsed / 60:.1f} min elapsed, about "
              f"{elapsed / i * (len(todo) - i) / 60:.1f} min to go)", flush=True)
    if pool:
        pool.close()
        pool.join()
    return records, failures, seconds


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the replications in worker processes, print and write the summary."""
    args = _parse(argv)
    settings = {"base": args.base_map, "scenarios": args.scenario_map}
    data_dir = Path(os.environ.get("CTI_DATA_DIR", ROOT / "data")).resolve()
    key = json.dumps({"settings": settings, "code": _code_version()}, sort_keys=True)
    run_dir = Path(args.from_run) if args.from_run else data_dir / "validate" / "runs" / _digest(key)
    run_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.first_seed, args.first_seed + args.replications))
    started = time.perf_counter()
    if args.from_run:
        records = [r for f in sorted(run_dir.glob("seed_*.json")) for r in json.loads(f.read_text())]
        records = [r for r in records if r["scenario"] in args.scenario_map]
        failures, seconds = [], []
        print(f"summarising {len({r['seed'] for r in records})} replications stored in {run_dir}")
    else:
        records, failures, seconds = _replicate_all(seeds, settings, run_dir, args.workers)
    wall = time.perf_counter() - started
    cells = summarise(records)
    pre_groups = {name: _without(cfg, ("effects",)) for name, cfg in args.configs.items()}
    for c in cells:
        c["pre_key"] = pre_groups.get(c["scenario"], c["scenario"])
    goals = targets(cells)
    print()
    print_table(cells)
    print_targets(goals)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_average_at_end": os.getloadavg()},
        "command": " ".join(["scripts/validate.py", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {**settings, "replications": len({r["seed"] for r in records}),
                     "first_seed": args.first_seed, "workers": args.workers, "run_dir": str(run_dir)},
        "wall_seconds": round(wall, 1),
        "seconds_per_replication": round(sum(seconds) / len(seconds), 1) if seconds else None,
        "cells": cells,
        "targets": goals,
        "failures": failures,
        "markdown": markdown_table(cells),
    }
    out = data_dir / "validate"
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    (out / f"validate_{date.today().isoformat()}.json").write_text(text)
    (out / "validate_latest.json").write_text(text)
    print(f"\nwritten: {out / 'validate_latest.json'} ({wall / 60:.1f} min)")
    return 1 if failures else 0


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _code_version() -> str:
    """Hash of the analysis code and this script, so replications of other code are never reused."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "analysis").rglob("*.py")) + [Path(__file__)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    sys.exit(main())
