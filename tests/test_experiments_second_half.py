"""The other half of tests/test_experiments.py's quick runs (its SECOND_HALF says why they are apart)."""

from __future__ import annotations

import pytest

from tests.test_experiments import SECOND_HALF, quick_cases, run_quick_mode


@pytest.mark.parametrize("script", quick_cases(SECOND_HALF))
def test_quick_mode_runs_and_records_its_provenance(script, tmp_path):
    run_quick_mode(script, tmp_path)
