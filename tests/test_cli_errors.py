"""Every launcher answers bad input with one line and a non-zero exit, never a traceback.

Flag errors run the real launchers as subprocesses: they answer before JAX loads, about
a second each. Errors found once the flags parse (a workdir, a task, a file) are checked
in this process through `common.run`, which is what each launcher's main calls.
"""

import json
import os
import pathlib
import subprocess
import sys
import types

import pytest

from launch import common
from launch import prune_cli
from launch import tasks_cli
from sparse_gpt import aot
from sparse_gpt.pruning import config as prune_config
from sparse_gpt.pruning import pipeline
from sparse_gpt.tasks import registry

ROOT = pathlib.Path(__file__).resolve().parents[1]
_TRAIN_KEYS = ("batch_size, beta1, beta2, checkpoint_every, eps, eval_batches, eval_every, "
               "grad_rms_clip, grad_rms_mode, keep_checkpoints, learning_rate, log_every, "
               "steps, warmup, weight_decay")


def _one_line(stderr: str) -> str:
  assert "Traceback" not in stderr
  lines = stderr.strip().splitlines()
  assert len(lines) == 1, stderr
  return lines[0]


FLAG_ERRORS = [
    # An unknown key: without --config it is parsed at import, with it at flag parsing.
    ("train", ["--workdir=w", "--config.train.nope=1"],
     f"error: --config.train.nope: config.train has no key 'nope'; the keys of config.train "
     f"are {_TRAIN_KEYS}"),
    ("train", ["--workdir=w", "--config=experiments/tiny.py", "--config.trian.steps=1"],
     "error: --config.trian.steps: config has no key 'trian'; did you mean "
     "--config.train.steps?"),
    ("train", ["--workdir=w", "--config.train.steps.x=1"],
     "error: --config.train.steps.x: config.train.steps is a value, not a section of keys"),
    ("train", ["--workdir=w", "--config=experiments/nope.py"],
     "error: --config=experiments/nope.py: there is no file experiments/nope.py; did you "
     "mean experiments/paper.py or experiments/dense.py or experiments/tiny.py?"),
    ("train", ["--workdir=w", "--config=experiments/paper.py:abc"],
     "error: --config=experiments/paper.py:abc: experiments/paper.py's get_config('abc') "
     "failed (ValueError: invalid literal for int() with base 10: 'abc')"),
    ("train", ["--workdir=w", "--config.train.steps=abc"],
     "error: flag --config.train.steps=abc: invalid literal for int() with base 10: 'abc'; "
     "config.train.steps takes an int (now 1000) (see python -m launch.train --helpshort)"),
    ("train", [],
     "error: give --workdir: Where checkpoints and logs go (a local path or gs://...). "
     "(see python -m launch.train --helpshort)"),
    ("train", ["--workdir=w", "--num_processes=2", "--process_id=2"],
     "error: flags num_processes=2, process_id=2: --process_id counts from 0 to "
     "--num_processes - 1 (see python -m launch.train --helpshort)"),
    ("train", ["--workdir=w", "--coordinator_address=host"],
     "error: flag --coordinator_address=host: give host:port, e.g. "
     "--coordinator_address=10.0.0.1:1234 (see python -m launch.train --helpshort)"),
    ("demo", ["--workdir="],
     "error: flag --workdir=: give a directory, e.g. --workdir=runs/tiny "
     "(see python -m launch.demo --helpshort)"),
    ("prune", ["--prune.stpes=1"],
     "error: --prune.stpes: prune has no key 'stpes'; did you mean --prune.steps or "
     "--prune.seeds?"),
    ("prune", ["--prune.k_coefs=abc"],
     'error: --prune.k_coefs=abc: prune.k_coefs is a tuple of numbers, e.g. '
     '--prune.k_coefs="(0.0001,)"'),
    ("prune", ["--prune=3"],
     "error: --prune=3: --prune takes no value; set its keys with --prune.KEY=VALUE"),
    ("tasks", ["--show=-1"],
     "error: flag --show=-1: -1 is not a non-negative integer "
     "(see python -m launch.tasks --helpshort)"),
    ("tasks", ["--n_pairs=0"],
     "error: flag --n_pairs=0: 0 is not a positive integer "
     "(see python -m launch.tasks --helpshort)"),
    ("tasks", ["--n_pairs=-3"],
     "error: flag --n_pairs=-3: -3 is not a positive integer "
     "(see python -m launch.tasks --helpshort)"),
    ("tasks", ["--split=bad"],
     "error: flag --split=bad: value should be one of <train|heldout> "
     "(see python -m launch.tasks --helpshort)"),
    ("tasks", ["--compare=runs/dense,"],
     "error: flag --compare=['runs/dense', '']: give workdirs separated by commas, e.g. "
     "--compare=runs/dense (see python -m launch.tasks --helpshort)"),
    ("compile", ["--config=experiments/tiny.py"],
     "error: give --topology: A TPU slice (v5p-64, v4-32, v5e-16, v6e-8) or GPUs (8xH100, "
     "2x8xH100). (see python -m launch.compile --helpshort)"),
    ("demo", ["--workdri=runs/demo"],
     "error: Unknown command line flag 'workdri'. Did you mean: workdir ? "
     "(see python -m launch.demo --helpshort)"),
]


def _launch(launcher: str, *args: str) -> tuple[int, str]:
  """(exit code, stderr) of python -m launch.LAUNCHER ARGS."""
  env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
  done = subprocess.run([sys.executable, "-m", f"launch.{launcher}", *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=120, check=False)
  return done.returncode, done.stderr


@pytest.mark.parametrize("launcher,args,line", FLAG_ERRORS,
                         ids=[f"{c[0]} {' '.join(c[1])}" for c in FLAG_ERRORS])
def test_a_bad_flag_is_one_line(launcher, args, line):
  returncode, stderr = _launch(launcher, *args)
  assert returncode != 0
  assert _one_line(stderr) == line


def _error(fn) -> str:
  """The line common.run exits with."""
  with pytest.raises(SystemExit) as exit_info:
    common.run(fn)
  assert isinstance(exit_info.value.code, str) and "\n" not in exit_info.value.code
  return exit_info.value.code


@pytest.fixture(name="wd")
def _wd(tmp_path):
  """A workdir that passes the checks made before a model loads."""
  (tmp_path / "config.json").write_text("{}")
  (tmp_path / "circuits").mkdir()
  (tmp_path / "mine.jsonl").write_text("")
  return tmp_path


def test_tasks_names_what_is_missing(wd):
  missing = wd / "missing"
  assert _error(lambda: tasks_cli.main(str(missing))) == (
      f"error: {missing} holds no run (no config.json). Train one with python -m "
      f"launch.train --config=experiments/tiny.py --workdir={missing}")
  assert _error(lambda: tasks_cli.main(str(wd), compare=(str(missing),))).startswith(
      f"error: {missing} holds no run")
  assert _error(lambda: tasks_cli.main(str(wd), circuit="missing.json")) == (
      "error: circuit file missing.json does not exist; write one with python -m "
      "launch.prune")
  assert _error(lambda: tasks_cli.main(str(wd), pairs=str(missing))) == (
      f"error: Pairs file {missing} does not exist.")
  assert _error(lambda: tasks_cli.main(str(wd), task="nope")).startswith(
      "error: Unknown task 'nope'. Known tasks: bracket_brace, ")


def test_compile_names_a_bad_topology():
  assert _error(lambda: aot.parse_topology("v9-8")).startswith(
      "error: --topology='v9-8': use a TPU slice such as v5p-64")


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "", "my task"])
def test_a_circuit_name_is_a_file_name(wd, name):
  pairs = wd / ("my task.jsonl" if name == "" else "mine.jsonl")
  pairs.write_text("")
  assert _error(lambda: prune_cli.main(str(wd), pairs=str(pairs), name=name)) == (
      f"error: --name={name or 'my task'!r}: a circuit's name is a file name in "
      "<workdir>/circuits/ (letters, digits, _, - and ., not starting with a dot), not a "
      "path; e.g. --name=my_task")


def test_name_is_only_for_pairs(wd):
  assert _error(lambda: prune_cli.main(str(wd), task="all", name="x")) == (
      "error: --name=x names the circuit of a --pairs file; a registered task's circuit "
      "is named after the task: drop --name.")


def _circuit(wd, name: str, source: str, pairs_file: str | None):
  path = wd / "circuits" / f"{name}.json"
  path.write_text(json.dumps({"task": {"name": name, "source": source,
                                       "pairs_file": pairs_file}}))
  return path


def test_replacing_another_sources_circuit_needs_overwrite(wd, monkeypatch):
  quote = _circuit(wd, "single_double_quote", "registry", None)
  assert _error(lambda: prune_cli.main(str(wd), pairs=str(wd / "mine.jsonl"),
                                       name="single_double_quote")) == (
      f"error: {quote} holds the circuit of registered task single_double_quote; pass "
      "--overwrite to replace it, or choose another name with --name.")
  monkeypatch.chdir(wd)  # a circuit records its pairs file as given: here, relative
  mine = _circuit(wd, "with_as", "pairs_file", "mine.jsonl")
  assert _error(lambda: prune_cli.main(str(wd), task="with_as")) == (
      f"error: {mine} holds the circuit of {os.path.realpath(wd / 'mine.jsonl')}; pass "
      "--overwrite to replace it.")
  (wd / "circuits" / "cut.json").write_text('{"task": ')
  assert _error(lambda: prune_cli.main(str(wd), pairs=str(wd / "mine.jsonl"),
                                       name="cut")).startswith(
      f"error: {wd / 'circuits' / 'cut.json'} holds no readable circuit; pass --overwrite")
  # The same source again, or --overwrite, passes the check.
  prune_cli.check_overwrite(str(wd), "with_as", str(wd / "mine.jsonl"), overwrite=False)
  prune_cli.check_overwrite(str(wd), "single_double_quote", None, overwrite=False)
  prune_cli.check_overwrite(str(wd), "with_as", None, overwrite=True)


def test_launch_prune_passes_overwrite_on(tmp_path):
  """With --overwrite the clash is no error: what stops the run is that there is none."""
  (tmp_path / "circuits").mkdir()
  _circuit(tmp_path, "with_as", "pairs_file", "mine.jsonl")
  returncode, stderr = _launch("prune", f"--workdir={tmp_path}", "--task=with_as",
                               "--overwrite")
  assert returncode != 0
  assert _one_line(stderr).startswith(f"error: {tmp_path} holds no run (no config.json)")


def test_prune_all_skips_a_clash_and_counts_the_solved(wd, monkeypatch):
  mine = _circuit(wd, "with_as", "pairs_file", str(wd / "mine.jsonl"))

  def not_solved(run, name, cfg):
    raise pipeline.NotSolved(name, 0.5, cfg.target_loss)

  monkeypatch.setattr(pipeline, "registry_task", not_solved)
  lines = prune_cli.prune_solved(types.SimpleNamespace(workdir=str(wd)),
                                 prune_config.defaults())
  assert lines[registry.names().index("with_as")] == (
      f"with_as                      skipped: {mine} holds the circuit of "
      f"{os.path.realpath(wd / 'mine.jsonl')}; pass --overwrite to replace it.")
  assert lines[0] == ("bracket_brace                skipped: not solved (full-model task "
                      "loss 0.5000 > target 0.15)")
  assert lines[-1] == ("0 of 20 tasks solved (full-model task loss <= target 0.15 on the "
                       "training pairs) and pruned")
