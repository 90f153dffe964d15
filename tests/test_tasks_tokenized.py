"""Tasks against a tokenizer: resolution checks, pairs files, scoring, table and CLI."""

import json
import math
import os
import pathlib
import subprocess
import sys
import sysconfig

import jax
import ml_collections
import numpy as np
import pytest

from sparse_gpt import tasks
from sparse_gpt import tokenizer
from sparse_gpt.errors import UserError
from launch import tasks_cli as cli
from sparse_gpt.tasks import compare
from sparse_gpt.tasks import evaluate
from sparse_gpt.tasks import pairs_file
from sparse_gpt.tasks import registry
from sparse_gpt.tasks import resolve

ROOT = pathlib.Path(__file__).resolve().parents[1]
QUOTES = tasks.Pair("x = 1\nprint('hello world", 'x = 1\nprint("hello world', "')", '")')


@pytest.fixture(scope="session")
def tok():
  texts = [p.prompt_a + p.candidate_a + "\n" + p.prompt_b + p.candidate_b
           for name in tasks.names() for p in tasks.sample_pairs(name, "train", 30, 99)]
  stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
  texts += [(stdlib / f).read_text() for f in ("textwrap.py", "json/encoder.py")]
  return tokenizer.train_bpe(texts, 800)


def _id(tok, text):
  ids = tok.encode(text).ids
  assert len(ids) == 1, f"test assumes {text!r} is one token"
  return ids[0]


def test_resolution_encodes_each_pair_as_two_sequences(tok):
  batch = resolve.resolve_pairs([QUOTES], tok, n_ctx=64, name="quotes")
  a, b = (tok.encode(p).ids for p in (QUOTES.prompt_a, QUOTES.prompt_b))
  np.testing.assert_array_equal(batch.last_B, [len(a) - 1, len(b) - 1])
  np.testing.assert_array_equal(batch.correct_B, [_id(tok, "')"), _id(tok, '")')])
  np.testing.assert_array_equal(batch.incorrect_B, batch.correct_B[::-1])
  assert batch.tokens_BxL.dtype == np.int32
  assert batch.tokens_BxL.shape == (2, max(len(a), len(b)))
  for row, ids in enumerate((a, b)):
    assert batch.tokens_BxL[row, :len(ids)].tolist() == ids
    assert not batch.tokens_BxL[row, len(ids):].any()  # right-padded with 0
  assert (batch.n_dropped_length, batch.n_dropped_tokens, batch.notes) == (0, 0, ())
  # A pytree whose arrays are leaves, so it goes straight into jitted code.
  assert len(jax.tree.leaves(batch)) == 4
  assert int(jax.jit(lambda b: b.correct_B.sum())(batch)) == int(batch.correct_B.sum())


def test_a_candidate_split_in_two_is_not_posable(tok):
  assert len(tok.encode(" zqxj").ids) > 1
  pair = tasks.Pair("if x", "x", " zqxj", " =")
  with pytest.raises(tasks.TaskNotPosable,
                     match=r"'made_up'.*candidate ' zqxj' is not one token: it tokenizes "
                     r"as \[.*\] \(1 of 1 pairs\)"):
    resolve.resolve_pairs([pair], tok, 64, "made_up")


def test_a_candidate_that_merges_into_the_prompt_is_not_posable(tok):
  _id(tok, " y")  # so "x, " + "y" encodes as "x", ",", " y", not ..., " ", "y"
  pair = tasks.Pair("x, ", "x = ", "y", " =")
  with pytest.raises(tasks.TaskNotPosable, match="'y' does not start a new token"):
    resolve.resolve_pairs([pair], tok, 64, "merging")


def test_two_candidates_that_are_one_token_are_not_posable(tok):
  with pytest.raises(tasks.TaskNotPosable, match="same token"):
    resolve.resolve_pairs([tasks.Pair("if x", "x", " ==", " ==")], tok, 64, "same")


def test_a_declared_alternative_form_is_used_and_reported(tok):
  pair = tasks.Pair("def f(a=None, b", "def f(a, b", "=None", "):")
  with pytest.raises(tasks.TaskNotPosable, match="'=None' is not one token"):
    resolve.resolve_pairs([pair], tok, 64, "kwarg")
  batch = resolve.resolve_pairs([pair], tok, 64, "kwarg", {"=None": ("=",)})
  assert batch.correct_B.tolist() == [_id(tok, "="), _id(tok, "):")]
  assert batch.notes == ("'=None' as '='",)


def test_long_pairs_are_dropped_and_counted(tok):
  short = tasks.Pair("if x", "x", " ==", " =")
  n_ctx = len(tok.encode(QUOTES.prompt_a).ids) - 1
  batch = resolve.resolve_pairs([QUOTES, short], tok, n_ctx, "mixed")
  assert len(batch) == 2 and batch.n_dropped_length == 1
  with pytest.raises(tasks.TaskNotPosable, match=f"longer than n_ctx={n_ctx}"):
    resolve.resolve_pairs([QUOTES], tok, n_ctx, "long")


@pytest.mark.parametrize("name", registry.names())
def test_every_task_resolves_cleanly_or_says_why(tok, name):
  try:
    batch = tasks.resolve_task(name, tok, n_ctx=128, n_pairs=4)
  except tasks.TaskNotPosable as e:
    assert name in str(e) and "tokenizes as" in str(e)
    return
  assert len(batch) == 8
  for row in range(len(batch)):
    ids = batch.tokens_BxL[row, :batch.last_B[row] + 1].tolist()
    prompt = tok.decode(ids)
    for candidate in (batch.correct_B[row], batch.incorrect_B[row]):
      assert tok.encode(prompt + tok.decode([int(candidate)])).ids == ids + [candidate]


def _write(tmp_path, lines):
  path = tmp_path / "mine.jsonl"
  path.write_text("".join(line + "\n" for line in lines))
  return path


def _record(prompt, correct, incorrect):
  return json.dumps({"prompt": prompt, "correct": correct, "incorrect": incorrect})


def test_pairs_file_is_one_sequence_per_record(tok, tmp_path):
  path = _write(tmp_path, [_record(QUOTES.prompt_a, "')", '")'), "",
                           _record(QUOTES.prompt_b, '")', "')")])
  batch = pairs_file.resolve_file(path, tok, 64)
  assert batch.name == "mine" and len(batch) == 2
  assert batch.correct_B.tolist() == [_id(tok, "')"), _id(tok, '")')]


@pytest.mark.parametrize("lines, message", [
    (['{"prompt": "x", "correct": " =", "incorrect": " =="}', "{oops"],
     r"mine.jsonl:2: not valid JSON"),
    (['{"prompt": "x", "correct": " ="}'], r"mine.jsonl:1: missing keys \['incorrect'\]"),
    (['{"prompt": "x", "correct": " =", "incorrect": 3}'],
     r"mine.jsonl:1: 'incorrect' must be a string, got int 3"),
    (['["x", " =", " =="]'], r"mine.jsonl:1: expected a JSON object"),
    (["", '{"prompt": "x", "correct": " =", "incorrect": " zqxj"}'],
     r"mine.jsonl:2: candidate ' zqxj' is not one token"),
    (["", "  "], r"mine.jsonl has no records"),
])
def test_pairs_file_errors_name_the_line(tok, tmp_path, lines, message):
  with pytest.raises(ValueError, match=message) as e:
    pairs_file.resolve_file(_write(tmp_path, lines), tok, 64)
  assert isinstance(e.value, UserError)


def test_missing_pairs_file(tok, tmp_path):
  with pytest.raises(tasks.TaskError, match="does not exist"):
    pairs_file.resolve_file(tmp_path / "absent.jsonl", tok, 64)


def test_read_as_pairs_a_too_long_record_drops_its_whole_pair(tok, tmp_path):
  """Pair 1's second record is too long: pair 1 goes, and pair 2 keeps its partner."""
  long_prompt = QUOTES.prompt_b + " and more" * 20
  lines = [_record(QUOTES.prompt_a, "')", '")'), _record(QUOTES.prompt_b, '")', "')"),
           _record("if x", " ==", " ="), _record(long_prompt, " =", " =="),
           _record("while y", " =", " =="), _record("while y ", " ==", " =")]
  path = _write(tmp_path, lines)
  n_ctx = 32
  assert len(tok.encode(long_prompt).ids) > n_ctx >= len(tok.encode(QUOTES.prompt_b).ids)
  batch, dropped = pairs_file.resolve_file_pairs(path, tok, n_ctx)
  assert len(batch) == 4 and batch.n_dropped_length == 1
  assert dropped == (pairs_file.DroppedPair(1, (3, 4), (len(tok.encode("if x").ids),
                                                       len(tok.encode(long_prompt).ids))),)
  # Each kept pair's rows are the file's records of that pair: its candidates swap.
  np.testing.assert_array_equal(batch.correct_B, [_id(tok, "')"), _id(tok, '")'),
                                                  _id(tok, " ="), _id(tok, " ==")])
  np.testing.assert_array_equal(batch.incorrect_B.reshape(2, 2), batch.correct_B.reshape(
      2, 2)[:, ::-1])
  # Scored as sequences, the file loses only the long record.
  assert len(pairs_file.resolve_file(path, tok, n_ctx)) == 5
  with pytest.raises(tasks.TaskError, match="even number of records.*it has 5"):
    pairs_file.resolve_file_pairs(_write(tmp_path, lines[:5]), tok, n_ctx)
  with pytest.raises(tasks.TaskNotPosable, match="every one of its 1 pairs"):
    pairs_file.resolve_file_pairs(_write(tmp_path, lines[2:4]), tok, n_ctx)


def _bigram(tok):
  """Params of a fake model whose logits at a position are table[token]: it always
  prefers `')` to `")` by 1."""
  table = np.zeros((tok.get_vocab_size(), tok.get_vocab_size()), np.float32)
  table[:, _id(tok, "')")] = 1.0
  return table


def _bigram_logits(params, tokens_BxL):
  return params[tokens_BxL]


@pytest.mark.parametrize("chunk", [3, 64])
def test_scorer_matches_the_loss_on_the_whole_batch(tok, chunk):
  batch = tasks.resolve_task("single_double_quote", tok, 128, n_pairs=5)
  score = evaluate.make_scorer(_bigram_logits, _bigram(tok), n_ctx=128, chunk=chunk)
  result = evaluate.evaluate_batch(score, batch)
  # Half the sequences want `')`: margin +1; the other half -1.
  expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2
  assert result.n == 10 and result.status == "ok"
  assert result.loss == pytest.approx(expected, rel=1e-6)
  assert result.accuracy == 0.5


def test_table_tolerates_a_task_that_cannot_be_posed(tok, monkeypatch):
  # The GPT-2 pre-tokenizer always splits "=None", so this task can never be posed.
  monkeypatch.setitem(registry._TASKS, "zz_kwarg", registry.Task(
      "zz_kwarg", lambda rng: tasks.Pair(f"def f(a=None, b{rng.random()}",
                                         f"def f(a, b{rng.random()}", "=None", "):"),
      "unposable", {}, 32))
  score = evaluate.make_scorer(_bigram_logits, _bigram(tok), n_ctx=128)
  results = evaluate.evaluate_all(score, tok, 128, n_pairs=2)
  assert [r.task for r in results] == registry.names()
  last = results[-1]
  assert (last.task, last.n, last.loss) == ("zz_kwarg", 0, None)
  assert last.status.startswith("not posable: ") and "'=None'" in last.status
  table = evaluate.format_table(results).splitlines()
  assert len(table) == len(results) + 1
  assert table[-1].startswith("zz_kwarg ") and "  -  " in table[-1]
  row = json.loads(json.dumps(evaluate.results_json(results, seed=0)))["tasks"][-1]
  assert row == {"task": "zz_kwarg", "n": 0, "loss": None, "accuracy": None,
                 "status": last.status}


def test_table_columns_are_aligned():
  results = [evaluate.TaskResult("a", 2, 0.5, 1.0, "ok"),
             evaluate.TaskResult("long_name", 10, None, None, "not posable: x")]
  assert evaluate.format_table(results) == (
      "task        n    loss  accuracy  status\n"
      "a           2  0.5000     1.000  ok\n"
      "long_name  10       -         -  not posable: x")


class _FakeRun:
  """What cli.report needs of run_io.Run."""

  def __init__(self, tok):
    self.config = ml_collections.ConfigDict({"model": {"n_ctx": 128}})
    self.tokenizer, self.params, self.step = tok, _bigram(tok), 7

  def forward(self, params, tokens_BxL, edits=None, record=()):
    del edits, record
    return _bigram_logits(params, tokens_BxL), {}


def test_report_scores_shows_and_reads_pairs_files(tok, tmp_path):
  run = _FakeRun(tok)
  text = cli.report(run, task="single_double_quote", n_pairs=3)
  assert text.splitlines()[0] == "step 7, split heldout, seed 0, model full model"
  assert text.splitlines()[2].startswith("single_double_quote  6  0.8133     0.500  ok")
  as_json = json.loads(cli.report(run, task="single_double_quote", n_pairs=3,
                                  as_json=True))
  assert as_json["step"] == 7 and as_json["tasks"][0]["n"] == 6
  shown = cli.report(run, task="bracket_brace", show=2)
  assert shown.count("\n[") == 4 and "    correct " in shown
  path = _write(tmp_path, [_record(QUOTES.prompt_a, "')", '")')])
  assert "\nmine " in cli.report(run, pairs=str(path))


def test_the_all_tasks_table_counts_the_accurate(tok):
  lines = cli.report(_FakeRun(tok), n_pairs=2).splitlines()
  accuracies = [row.split()[3] for row in lines[2:-1]]
  assert len(accuracies) == 20
  accurate = sum(a != "-" and float(a) >= 0.9 for a in accuracies)
  assert lines[-1] == f"{accurate} of 20 tasks accurate (accuracy >= 0.9)"


def test_comparison_lines_up_tasks_and_counts_the_accurate():
  sparse = [evaluate.TaskResult("a", 2, 0.3, 0.85, "ok"),
            evaluate.TaskResult("bb", 2, 0.5, 0.5, "ok")]
  dense = [evaluate.TaskResult("a", 2, 0.2, 0.95, "ok"),
           evaluate.TaskResult("bb", 0, None, None, "not posable: x")]
  assert compare.format_comparison(["sparse", "dense_run"], [sparse, dense]) == (
      "task                               sparse      dense_run\n"
      "                            loss accuracy  loss accuracy\n"
      "a                            0.3000 0.850   0.2000 0.950\n"
      "bb                           0.5000 0.500              -\n"
      "accurate (accuracy >= 0.9)              0              1")


def test_compare_report_scores_each_run_on_the_same_pairs(tok):
  prefers_single, prefers_double = _FakeRun(tok), _FakeRun(tok)
  prefers_double.params = np.zeros_like(prefers_double.params)
  prefers_double.params[:, _id(tok, '")')] = 1.0
  prefers_double.step = 9
  runs = {"single": prefers_single, "double": prefers_double}
  text = cli.compare_report(runs, task="single_double_quote", n_pairs=3).splitlines()
  assert text[0] == "split heldout, seed 0, full models"
  assert text[1].split() == ["task", "single", "(step", "7)", "double", "(step", "9)"]
  # Each model is right on exactly the half of the pairs whose answer it prefers.
  assert text[3].split() == ["single_double_quote", "0.8133", "0.500", "0.8133", "0.500"]
  as_json = json.loads(cli.compare_report(runs, task="single_double_quote", n_pairs=3,
                                          as_json=True))
  assert [(r["workdir"], r["step"]) for r in as_json["runs"]] == [("single", 7),
                                                                   ("double", 9)]
  with pytest.raises(tasks.TaskError, match="--compare"):
    cli.main("runs/a", show=2, compare=("runs/b",))


def test_cli_lists_and_rejects(tmp_path):
  assert cli.main(None, list_tasks=True).splitlines() == registry.names()
  with pytest.raises(tasks.TaskError, match="--workdir"):
    cli.main(None)
  with pytest.raises(tasks.TaskError, match="Unknown task 'nope'"):
    cli.main(str(tmp_path), task="nope")
  with pytest.raises(UserError, match="absent"):
    cli.main(str(tmp_path / "absent"))


def _launch(*args):
  env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, "-m", "launch.tasks", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120, check=False)


def test_launcher_lists_the_twenty_tasks():
  done = _launch("--list")
  assert done.returncode == 0, done.stderr
  assert done.stdout.split() == registry.names() and len(registry.names()) == 20


def test_launcher_errors_are_one_line_without_traceback(tmp_path):
  done = _launch(f"--workdir={tmp_path}", "--task=nope")
  assert done.returncode != 0
  assert done.stderr.startswith("error: Unknown task 'nope'")
  assert "Traceback" not in done.stderr
