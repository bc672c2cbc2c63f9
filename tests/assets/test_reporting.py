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


def test_the_steward_view_reads_every_check_of_the_code_location_on_the_steward_assets(
        tmp_path: Path) -> None:
    from support import settings_for

    from assets.reporting import STEWARD_ASSETS, STEWARD_CHECKS
    from pipelines.definitions import build_definitions

    graph = build_definitions(settings_for(tmp_path / "data")).resolve_asset_graph()
    on_steward_assets = {k for k in graph.asset_check_keys if k.asset_key.to_user_string() in STEWARD_ASSETS}
    assert on_steward_assets and set(STEWARD_CHECKS) == on_steward_assets


def test_the_public_monitoring_page_is_drawn_from_the_controlled_publication(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis" / "publish"))
    from test_monitoring_page import _monitoring

    from analysis.publish.monitoring_tables import controlled_alone
    from assets.reporting import _public_monitoring
    from pipelines.layout import Layout

    layout, m = Layout.at(tmp_path / "data"), _monitoring()
    controlled = controlled_alone(m)
    files = _public_monitoring(layout, m, controlled, ())
    page = layout.monitoring_page(restricted=False).read_text()
    assert "disclosure-controlled together with the effect report" in page and "INTERNAL" not in page
    # every file is in the output-checking bundle, named by the controlled table it shows
    assert files["monitoring.html"] == (None, page.encode())
    assert files["monitoring_tables/monitoring_programme_stock.csv"][0] == "monitoring_stock"
    assert files["monitoring_tables/monitoring_new_starts.parquet"][0] == "monitoring_new_starts"
    written = {p.name for p in layout.monitoring_tables(restricted=False).iterdir()}
    assert written == {name.split("/")[1] for name in files if "/" in name}
    # a monitoring that could not be computed: the page says so, and publishes no table
    files = _public_monitoring(layout, None, controlled, ("measure 'delivery_days' is missing",))
    assert set(files) == {"monitoring.html"}
    assert "Not computed" in layout.monitoring_page(restricted=False).read_text()
