"""Fault suite, report friction (issue 17, item 16): merged tables, summary bars, stray log lines."""

from __future__ import annotations

import logging

import pandas as pd

from harness.analysis import plots, report


def test_a_parameter_a_row_does_not_have_is_a_dash_not_nan():
    table = pd.DataFrame({"model": ["m", "m"], "attack": ["direct", "prefill"], "k": [float("nan"), 5.0],
                          "n": [10, 10], "asr": [0.0, 40.0]})
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in report.markdown(table).splitlines()[2:]]
    assert rows == [["m", "direct", "-", "10", "0.0"], ["m", "prefill", "5", "10", "40.0"]]


def test_a_zero_percent_summary_bar_is_labelled_and_missing_data_says_so(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    summary = pd.DataFrame({"model": ["a", "b"], "defense": ["none", "none"], "attack": ["prefill", "prefill"],
                            "benchmark": ["advbench", "advbench"], "worst_case_asr": [0.0, 50.0],
                            "best_config_asr": [float("nan"), 25.0], "worst_case_asr_lo": [0.0, 30.0],
                            "worst_case_asr_hi": [10.0, 70.0], "best_config_asr_lo": [float("nan"), 10.0],
                            "best_config_asr_hi": [float("nan"), 45.0]})
    plots.plot_summary(summary, tmp_path)
    (fig,) = figures
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(labels) == sorted(["0", "no data", "50", "25"])


def test_harmbench_says_nothing_at_info_about_copyright(caplog):
    from benchmarks.harmbench import HarmBench

    with caplog.at_level(logging.INFO):
        HarmBench()
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "copyright" in r.getMessage()]
