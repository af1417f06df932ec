"""The regression gate on bad input: every way a table or its outcomes can be wrong is exit 2 with one line.

CI reads exit 1 as "the ASR rose". A traceback also exits 1, so a malformed baseline or run table
must never raise one: the gate says which file is wrong and how (`error: ...`), and exits 2.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, call_main

from harness.analysis import gate
from harness.cli import gate as gate_command

RANDOM_BYTES = b"\xff" + bytes(random.Random(0).getrandbits(8) for _ in range(511))  # never valid UTF-8
HEADER = "model,defense,attack,benchmark,k,n,asr,errors\n"
ROW = "m,none,prefill,advbench,0,50,4.0,0\n"
BEHAVIORS_HEADER = "model,defense,attack,benchmark,k,behavior,samples,harmful,broken\n"


def asr_rows(n: int = 50, harmful: int = 2) -> pd.DataFrame:
    return pd.DataFrame([{"model": "m", "defense": "none", "attack": "prefill", "benchmark": "advbench", "k": 0,
                          "n": n, "asr": 100.0 * harmful / n, "errors": 0}])


def outcomes(broken: list[object]) -> str:
    return BEHAVIORS_HEADER + "".join(f"m,none,prefill,advbench,0,b{i},1,0,{b}\n" for i, b in enumerate(broken))


@pytest.fixture
def run(tmp_path) -> Path:
    """A good run folder: one row, 2/50 broken, with per-behavior outcomes."""
    folder = tmp_path / "run"
    folder.mkdir()
    asr_rows().to_csv(folder / "asr.csv", index=False)
    (folder / "behaviors.csv").write_text(outcomes([i < 2 for i in range(50)]))
    return folder


def gate_main(capsys, *args: object) -> tuple[int, str, str]:
    """`harness gate` in-process: (exit code, stdout, stderr)."""
    return call_main(gate_command.main, capsys, *args)


def undecided(capsys, *args: object) -> str:
    """Run the gate, expect exit 2 and exactly one `error:` line on stderr; return that line."""
    code, out, err = gate_main(capsys, *args)
    assert code == gate.GateExit.UNDECIDED, (code, out, err)
    assert "Traceback" not in err and "gate: passed" not in out and "gate: FAILED" not in out
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ")
    return line


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


BAD_CSV = {
    "random bytes": (RANDOM_BYTES, "not UTF-8"),
    "empty file": (b"", "empty file"),
    "only a header": (HEADER, "no rows"),
    "not a table": ("hello\n", "missing asr, n"),
    "bad CSV": (HEADER + ROW + "m,none,prefill,advbench,0,50,4.0,0,extra,fields\n", "not a readable CSV"),
    "unterminated quote": (HEADER + ROW + '"m,none\n', "not a readable CSV"),
    "invalid UTF-8": (HEADER.encode() + "m\u00f6del,none,prefill,advbench,0,50,4.0,0\n".encode("latin-1"), "not UTF-8"),
    "text in n": (HEADER + "m,none,prefill,advbench,0,many,4.0,0\n", "column 'n', row 1: 'many' is not a number"),
    "text in asr": (HEADER + "m,none,prefill,advbench,0,50,high,0\n", "column 'asr', row 1: 'high' is not a number"),
    "text in errors": (HEADER + "m,none,prefill,advbench,0,50,4.0,some\n", "column 'errors', row 1"),
    "empty n": (HEADER + "m,none,prefill,advbench,0,,4.0,0\n", "column 'n', row 1"),
    "negative n": (HEADER + "m,none,prefill,advbench,0,-5,4.0,0\n", "-5 is not a count"),
    "fractional n": (HEADER + "m,none,prefill,advbench,0,2.5,4.0,0\n", "2.5 is not a count"),
    "asr over 100": (HEADER + "m,none,prefill,advbench,0,50,140,0\n", "140 is outside 0..100"),
    "negative asr": (HEADER + "m,none,prefill,advbench,0,50,-1,0\n", "-1 is outside 0..100"),
    "infinite asr": (HEADER + "m,none,prefill,advbench,0,50,inf,0\n", "not a finite number"),
    "a row twice": (HEADER + ROW + ROW, "two rows for"),
}


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_a_malformed_baseline_csv_is_exit_2(tmp_path, capsys, run, case):
    content, message = BAD_CSV[case]
    baseline = write(tmp_path / "base.csv", content)
    line = undecided(capsys, run, "--baseline", baseline)
    assert str(baseline) in line and message in line


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_a_malformed_run_table_is_exit_2(tmp_path, capsys, case):
    content, message = BAD_CSV[case]
    asr_rows().to_csv(tmp_path / "base.csv", index=False)
    table = write(tmp_path / "run" / "asr.csv", content)
    line = undecided(capsys, tmp_path / "run", "--baseline", tmp_path / "base.csv")
    assert str(table) in line and message in line and line.startswith("error: run ")


BAD_JSON = {
    "random bytes": (RANDOM_BYTES, "not UTF-8"),
    "empty file": ("", "not JSON (empty file)"),
    "not JSON": ("n,asr\n50,4\n", "not JSON"),
    "an object": ('{"a": 1}', "a JSON dict, not a list of rows"),
    "a number": ("3", "a JSON int, not a list of rows"),
    "a list of numbers": ("[1, 2]", "row 1 is a JSON int"),
    "a list of lists": ('[["m", 50, 4.0]]', "row 1 is a JSON list"),
    "a row then a string": ('[{"n": 50, "asr": 4.0}, "x"]', "row 2 is a JSON str"),
    "no rows": ("[]", "missing asr, n"),
    "rows without n": ('[{"model": "m", "asr": 4.0}]', "missing n"),
    "text in n": ('[{"model": "m", "n": "many", "asr": 4.0}]', "column 'n', row 1: 'many' is not a number"),
    "an object in n": ('[{"model": "m", "n": {"a": 1}, "asr": 4.0}]', "column 'n', row 1"),
    "true in n": ('[{"model": "m", "n": true, "asr": 4.0}]', "True is not a number"),
    "asr over 100": ('[{"model": "m", "n": 50, "asr": 101}]', "101 is outside 0..100"),
}


@pytest.mark.parametrize("case", list(BAD_JSON))
def test_a_malformed_baseline_json_is_exit_2(tmp_path, capsys, run, case):
    content, message = BAD_JSON[case]
    baseline = write(tmp_path / "base.json", content)
    line = undecided(capsys, run, "--baseline", baseline)
    assert str(baseline) in line and message in line


def test_numbers_written_as_text_in_json_are_read(tmp_path, capsys, run):
    write(tmp_path / "base.json", '[{"model": "m", "defense": "none", "attack": "prefill", "benchmark": "advbench", '
                                  '"k": 0, "n": "50", "asr": "4.0", "errors": null}]')
    assert gate_main(capsys, run, "--baseline", tmp_path / "base.json")[0] == gate.GateExit.PASSED


BAD_OUTCOMES = {
    "random bytes": (RANDOM_BYTES, "not UTF-8"),
    "empty file": (b"", "empty file"),
    "other columns": ("x,y\n1,2\n", "missing behavior, broken"),
    "no broken column": ("behavior,samples\nb0,1\n", "missing broken"),
    "broken is not a boolean": (outcomes([True, "maybe"]), "column 'broken', row 2: 'maybe' is not True or False"),
    "broken is a count": (outcomes([True, 2]), "column 'broken', row 2"),
    "broken is empty": (outcomes([True, ""]), "column 'broken', row 2"),
    "behavior is empty": (BEHAVIORS_HEADER + "m,none,prefill,advbench,0,,1,0,True\n", "column 'behavior', row 1"),
    "a behavior twice": (outcomes([True]) + outcomes([False]).removeprefix(BEHAVIORS_HEADER), "appears 2 times"),
}


@pytest.mark.parametrize("case", list(BAD_OUTCOMES))
def test_malformed_baseline_outcomes_are_exit_2(tmp_path, capsys, run, case):
    content, message = BAD_OUTCOMES[case]
    asr_rows().to_csv(tmp_path / "base.csv", index=False)
    found = write(tmp_path / "base.behaviors.csv", content)
    line = undecided(capsys, run, "--baseline", tmp_path / "base.csv")
    assert str(found) in line and message in line


@pytest.mark.parametrize("case", list(BAD_OUTCOMES))
def test_malformed_run_outcomes_are_exit_2(tmp_path, capsys, run, case):
    content, message = BAD_OUTCOMES[case]
    asr_rows().to_csv(tmp_path / "base.csv", index=False)
    found = write(run / "behaviors.csv", content)
    line = undecided(capsys, run, "--baseline", tmp_path / "base.csv")
    assert str(found) in line and message in line


@pytest.mark.parametrize("broken", [["True", "False"], ["true", "false"], [1, 0]])
def test_outcomes_with_only_a_header_or_boolean_spellings_are_read(tmp_path, capsys, run, broken):
    """A benign run's behaviors.csv has only a header (report.write); broken may read back as text or 0/1."""
    asr_rows().to_csv(tmp_path / "base.csv", index=False)
    write(tmp_path / "base.behaviors.csv", BEHAVIORS_HEADER)
    assert gate_main(capsys, run, "--baseline", tmp_path / "base.csv")[0] == gate.GateExit.PASSED
    write(tmp_path / "base.behaviors.csv", outcomes(broken))
    code, out, _ = gate_main(capsys, run, "--baseline", tmp_path / "base.csv")
    assert code == gate.GateExit.PASSED and "paired (n=2)" in out


def test_outcomes_are_a_folder(tmp_path, capsys, run):
    asr_rows().to_csv(tmp_path / "base.csv", index=False)
    (tmp_path / "base.behaviors.csv").mkdir()
    assert "not a file" in undecided(capsys, run, "--baseline", tmp_path / "base.csv")


def test_a_run_path_that_does_not_exist(tmp_path, capsys):
    asr_rows().to_csv(tmp_path / "base.csv", index=False)
    line = undecided(capsys, tmp_path / "nowhere", "--baseline", tmp_path / "base.csv")
    assert str(tmp_path / "nowhere") in line and "no such file" in line


def test_a_baseline_that_does_not_exist(tmp_path, capsys, run):
    line = undecided(capsys, run, "--baseline", tmp_path / "nowhere.csv")
    assert str(tmp_path / "nowhere.csv") in line and "no such file" in line


def test_write_baseline_where_the_parent_is_a_file(tmp_path, capsys, run):
    write(tmp_path / "file", "x")
    line = undecided(capsys, run, "--baseline", tmp_path / "file" / "sub" / "base.csv", "--write-baseline")
    assert str(tmp_path / "file") in line and "is a file, not a folder" in line
    assert (tmp_path / "file").read_text() == "x"


def test_write_baseline_onto_a_folder(tmp_path, capsys, run):
    (tmp_path / "base.csv").mkdir()
    line = undecided(capsys, run, "--baseline", tmp_path / "base.csv", "--write-baseline")
    assert str(tmp_path / "base.csv") in line and "is a folder" in line


def test_write_baseline_where_the_outcomes_path_is_a_folder(tmp_path, capsys, run):
    (tmp_path / "base.behaviors.csv").mkdir()
    line = undecided(capsys, run, "--baseline", tmp_path / "base.csv", "--write-baseline")
    assert str(tmp_path / "base.csv") in line and "cannot be written" in line


def test_random_bytes_baseline_from_the_command_line(tmp_path, run):
    """The real entry point: exit 2, no traceback, one line on stderr naming the file."""
    baseline = write(tmp_path / "base.csv", RANDOM_BYTES)
    done = subprocess.run([sys.executable, "-m", "harness", "gate", str(run), "--baseline", str(baseline)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(baseline) in line and "not UTF-8" in line
