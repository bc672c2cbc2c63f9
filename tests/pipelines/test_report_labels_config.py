from __future__ import annotations

from pathlib import Path

from pipelines.configuration import TABLES, ConfigDir


def test_report_labels_is_a_checked_configuration_table(tmp_path: Path) -> None:
    assert "report_labels" in TABLES
    assert ConfigDir().check() == []
    one_row = "kind,key,label,unit\noutcome,self_support,Self-supporting,pp\n"
    (tmp_path / "report_labels.csv").write_text(one_row)
    problems = [str(p) for p in ConfigDir(tmp_path).check()]
    assert "report_labels.csv: outcome 'employed' (analysis.schema.OUTCOMES) has no label row" in problems
    assert all(p.startswith("report_labels.csv") for p in problems)
