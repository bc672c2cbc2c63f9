"""The report asset carries the blocking disclosure audit."""

from pathlib import Path

import dagster as dg


def test_effect_report_has_a_blocking_disclosure_audit_check(tmp_path: Path) -> None:
    from support import settings_for

    from assets.reporting import DISCLOSURE_AUDIT, disclosure_rules, effect_report_html
    from pipelines.definitions import build_definitions
    from pipelines.resources import CodeLists

    specs = {spec.name: spec for spec in effect_report_html.check_specs}
    assert DISCLOSURE_AUDIT in specs and specs[DISCLOSURE_AUDIT].blocking
    graph = build_definitions(settings_for(tmp_path / "data")).resolve_asset_graph()
    assert dg.AssetCheckKey(dg.AssetKey("effect_report_html"), DISCLOSURE_AUDIT) in graph.asset_check_keys
    assert disclosure_rules(CodeLists()).min_persons == 5
