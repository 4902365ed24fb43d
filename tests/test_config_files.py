"""The settings files (protocol, limits, quality, privacy) are checked by typed models, and every error names the
file, the line of the offending key and its key path, so the person editing the YAML goes straight to it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ketreg.landing.limits import DEFAULT_LIMITS_FILE, LimitsError, load_limits
from ketreg.privacy.settings import PrivacySettingsError, load_privacy_settings
from ketreg.quality.settings import QualitySettingsError, load_quality_settings
from schemas.protocol import DEFAULT_PROTOCOL_FILE, ProtocolError, load_metric_settings, load_protocol


def _line_of(text: str, fragment: str) -> int:
    (line,) = [number for number, content in enumerate(text.splitlines(), 1) if fragment in content]
    return line


def _protocol_with(tmp_path: Path, change) -> tuple[Path, str]:
    raw = yaml.safe_load(DEFAULT_PROTOCOL_FILE.read_text(encoding="utf-8"))
    change(raw)
    path = tmp_path / "protocol.yaml"
    text = yaml.safe_dump(raw, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path, text


def test_a_metrics_setting_out_of_range_is_named_with_its_file_line_and_key_path(tmp_path: Path) -> None:
    path, text = _protocol_with(tmp_path, lambda raw: raw["metrics"]["primary_assessment"].update(
        pre_infusion_number=1))
    with pytest.raises(ProtocolError) as refused:
        load_metric_settings(path)
    message = str(refused.value)
    assert str(path) in message
    line = _line_of(text, "pre_infusion_number: 1")
    assert f"line {line}: metrics.primary_assessment.pre_infusion_number must be ≥ 2 (got 1)" in message


def test_every_problem_of_a_protocol_file_is_listed_at_once(tmp_path: Path) -> None:
    def break_two(raw: dict) -> None:
        raw["metrics"]["study_planning"]["alpha"] = "often"
        raw["metrics"]["baseline_nprs_bands"]["severe_from"] = 2

    path, text = _protocol_with(tmp_path, break_two)
    with pytest.raises(ProtocolError) as refused:
        load_metric_settings(path)
    message = str(refused.value)
    assert f"line {_line_of(text, 'alpha: often')}: metrics.study_planning.alpha" in message
    assert f"line {_line_of(text, 'baseline_nprs_bands:')}: metrics.baseline_nprs_bands" in message
    assert "0 < moderate_from < severe_from ≤ 10" in message


def test_a_missing_limit_of_the_protocol_points_at_its_section(tmp_path: Path) -> None:
    path, text = _protocol_with(tmp_path, lambda raw: raw["titration"].pop("max_rate_mg_h"))
    section = _line_of(text, "titration:")
    with pytest.raises(ProtocolError, match=rf"line {section}: titration\.max_rate_mg_h is missing"):
        load_protocol(path)


def test_rates_out_of_order_are_refused(tmp_path: Path) -> None:
    path, _ = _protocol_with(tmp_path, lambda raw: raw["titration"].update(first_infusion_max_rate_mg_h=500))
    with pytest.raises(ProtocolError, match="first-infusion maximum ≤ maximum ≤ plausibility limit"):
        load_protocol(path)


def test_yaml_syntax_errors_keep_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "protocol.yaml"
    path.write_text("name: x\nversion: [1\n", encoding="utf-8")
    with pytest.raises(ProtocolError, match=r"line 3, column 1: .*fix the YAML syntax"):
        load_protocol(path)


def test_a_limit_that_is_not_a_whole_number_or_unknown_is_named_with_its_line(tmp_path: Path) -> None:
    text = DEFAULT_LIMITS_FILE.read_text(encoding="utf-8").replace("max_rows: ", "max_rows: 1.5  # ")
    text += "max_coffee: 3\n"
    path = tmp_path / "limits.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LimitsError) as refused:
        load_limits(path)
    message = str(refused.value)
    assert f"line {_line_of(text, 'max_rows:')}: max_rows" in message
    assert f"line {_line_of(text, 'max_coffee')}: max_coffee is not a known setting" in message
    assert load_limits().max_rows > 0  # the shipped file itself passes


def test_a_completeness_share_above_one_names_table_column_and_line(tmp_path: Path) -> None:
    path = tmp_path / "quality.yaml"
    path.write_text("dagster_url: ''\noutcome_completeness:\n  infusions:\n    relief_duration_days: 2\n",
                    encoding="utf-8")
    with pytest.raises(QualitySettingsError,
                       match=r"line 4: outcome_completeness\.infusions\.relief_duration_days must be ≤ 1 \(got 2\)"):
        load_quality_settings(path)


def test_a_boolean_is_not_a_small_cell_count(tmp_path: Path) -> None:
    path = tmp_path / "privacy.yaml"
    path.write_text("# shared figures\nsmall_cell_count: true\n", encoding="utf-8")
    with pytest.raises(PrivacySettingsError, match=r"line 2: small_cell_count"):
        load_privacy_settings(path)
