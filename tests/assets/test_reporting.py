"""The report asset carries the blocking disclosure audit."""

import dagster as dg


def test_effect_report_has_a_blocking_disclosure_audit_check() -> None:
    from assets.reporting import DISCLOSURE_AUDIT, disclosure_rules, effect_report_html
    from pipelines.definitions import defs

    specs = {spec.name: spec for spec in effect_report_html.check_specs}
    assert DISCLOSURE_AUDIT in specs and specs[DISCLOSURE_AUDIT].blocking
    graph = defs.resolve_asset_graph()
    assert dg.AssetCheckKey(dg.AssetKey("effect_report_html"), DISCLOSURE_AUDIT) in graph.asset_check_keys
    from pipelines.resources import CodeLists

    assert disclosure_rules(CodeLists()).min_persons == 5
