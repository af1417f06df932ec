"""docs/ci-jobs.md's CI jobs, run locally: both YAML blocks parse, carry the same steps, every harness run in them
composes, and their lines run as a shell would (MODEL=tiny DEFENSE=none; the install line skipped; no network):
the gate line against synthetic run folders here, every line against the tiny random model under `-m slow`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, call_main

from harness import config
from harness.cli import gate as gate_command
from harness.store.records import RecordStore
from harness.types import Behavior, Completion, Message, Record, Request, Verdict

DOC = ROOT / "docs" / "ci-jobs.md"
LOCAL = {"MODEL": "tiny", "DEFENSE": "none"}  # what the jobs defend, here: the tiny random model, no defense


def jobs() -> dict[str, tuple[dict[str, str], list[str]]]:
    """'github' / 'gitlab' -> (environment, the lines the job runs in order)."""
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]
    (github,) = [b for b in blocks if "jobs" in b]
    (gitlab,) = [b for b in blocks if "jobs" not in b]
    (gh_job,), (gl_job,) = github["jobs"].values(), gitlab.values()
    return {"github": (gh_job["env"], [s["run"] for s in gh_job["steps"] if "run" in s]),
            "gitlab": (gl_job["variables"], list(gl_job["script"]))}


def steps(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("pip install")]  # installing needs the network


def shell_env(variables: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The job's variables (MODEL and DEFENSE local) and `harness` / `harness-gate` on PATH: the installed console
    scripts where they are, else shims running this checkout's `python -m harness`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, command in (("harness", ""), ("harness-gate", " gate")):
        shim = bin_dir / name
        shim.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" -m harness{command} "$@"\n')
        shim.chmod(0o755)
    data = os.environ.get("HARNESS_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    return {**os.environ, **variables, **LOCAL, "HARNESS_DATA_DIR": data, "PYTHONPATH": str(ROOT),
            "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def expanded(line: str, env: dict[str, str]) -> list[str]:
    return shlex.split(re.sub(r"\$(\w+)", lambda m: env[m.group(1)], line))


def record(bench: str, i: int, event: bool, k: int | None = None) -> Record:
    label = "harmful" if bench == "advbench" else "benign"
    b = Behavior(id=f"{bench}-{i}", prompt=f"p{i}", label=label, reference="7" if bench == "gsm8k" else "")
    req = Request(behavior_id=b.id, messages=(Message(role="user", content=b.prompt),),
                  attack="prefill" if bench == "advbench" else "direct", params={} if k is None else {"k": k})
    verdict = {"advbench": Verdict(harmful=event, refused=not event, judge="keyword@1"),
               "xstest": Verdict(harmful=False, refused=not event, judge="keyword@1"),
               "gsm8k": Verdict(harmful=False, score=float(event), judge="exact_match@1")}[bench]
    return Record(run=bench, model="tiny", defense="none", benchmark=bench, behavior=b,
                  completion=Completion(request=req, text="t"), verdict=verdict)


def synthetic_runs(root: Path, answered: int) -> None:
    """gate/advbench, gate/xstest, gate/gsm8k as the job's runs write them: 2 of 30 broken, `answered` safe prompts
    answered, 10 sums right."""
    for bench, count, ks in (("advbench", 2, (0, 10)), ("xstest", answered, (None,)), ("gsm8k", 10, (None,))):
        folder = root / "gate" / bench
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "records.jsonl").unlink(missing_ok=True)
        RecordStore(folder / "records.jsonl").append([record(bench, i, i < count, k) for k in ks for i in range(30)])


def test_both_jobs_parse_and_run_the_same_steps():
    found = jobs()
    assert steps(found["github"][1]) == steps(found["gitlab"][1]) and len(steps(found["github"][1])) == 4
    assert found["github"][0] == found["gitlab"][0]
    for line in steps(found["github"][1]):
        args = expanded(line, {**found["github"][0], **LOCAL})
        if args[0] == "harness":
            config.compose(args[1:])  # every override names a real group, option and key
        else:
            assert args[0] == "harness-gate" and args[1:4] == ["gate/advbench", "gate/xstest", "gate/gsm8k"]


def test_the_gate_line_passes_the_same_runs_and_fails_a_defense_that_refuses_everything(tmp_path, capsys, monkeypatch):
    variables, lines = jobs()["github"]
    env = shell_env(variables, tmp_path)
    (gate_line,) = [line for line in lines if line.startswith("harness-gate")]
    monkeypatch.chdir(tmp_path)
    synthetic_runs(tmp_path, answered=25)
    args = expanded(gate_line, env)[1:]
    code, out, err = call_main(gate_command.main, capsys, *args, "--write-baseline")
    assert code == 0 and "with per-behavior outcomes" in out, err
    passed = subprocess.run(["bash", "-c", gate_line], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert passed.returncode == 0 and "gate: passed" in passed.stdout, passed.stdout + passed.stderr
    synthetic_runs(tmp_path, answered=0)
    code, out, _ = call_main(gate_command.main, capsys, *args)
    assert code == 1 and "gate: FAILED" in out
    (row,) = [line for line in out.splitlines() if "| over_refusal " in line]
    assert "FAIL" in row


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["github", "gitlab"])
def test_every_line_runs_on_the_tiny_model(tmp_path, flavor):
    variables, lines = jobs()[flavor]
    env = shell_env(variables, tmp_path)
    (tmp_path / "results" / "baselines").mkdir(parents=True)
    for line in steps(lines):
        if line.startswith("harness-gate"):
            written = subprocess.run(["bash", "-c", line + " --write-baseline"], env=env, cwd=tmp_path,
                                     capture_output=True, text=True, timeout=300)
            assert written.returncode == 0, written.stderr
        done = subprocess.run(["bash", "-c", line], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "gate: passed" in done.stdout and done.stdout.count("paired (n=30)") == 4
