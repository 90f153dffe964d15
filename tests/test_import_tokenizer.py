"""A tiktoken encoding converted to a workdir tokenizer encodes every string as tiktoken does."""

import base64
import contextlib
import io
import json
import pathlib
import random

import pytest

from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt.errors import UserError
from sparse_gpt.importing import tiktoken_bpe

tiktoken = pytest.importorskip("tiktoken", reason="needs the torch extra: "
                               "pip install -e '.[torch]'")
from tiktoken import _educational  # pylint: disable=g-import-not-at-top,g-bad-import-order
from tiktoken import load as tiktoken_load  # pylint: disable=g-import-not-at-top

_STDLIB = pathlib.Path(random.__file__).parent
_VOCAB = 360  # 359 BPE tokens and <|endoftext|>


@pytest.fixture(scope="module")
def encoding():
  """A small BPE trained by tiktoken's own reference trainer on Python source."""
  text = "".join(f.read_text() for f in sorted((_STDLIB / "json").glob("*.py")))[:20_000]
  with contextlib.redirect_stdout(io.StringIO()):  # the trainer prints its progress
    ranks = _educational.bpe_train(text, _VOCAB - 1, tiktoken_bpe.TINYPYTHON_PATTERN,
                                   visualise=None)
  return ranks, tiktoken.Encoding("small", pat_str=tiktoken_bpe.TINYPYTHON_PATTERN,
                                  mergeable_ranks=ranks,
                                  special_tokens={tokenizer_lib.END_OF_TEXT: _VOCAB - 1})


def _tiktoken_file(ranks: dict[bytes, int], f: pathlib.Path) -> str:
  """The .tiktoken format (as tiktoken.load.dump_tiktoken_bpe writes it, without blobfile)."""
  f.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in ranks.items()))
  return str(f)


def _strings() -> list[str]:
  """Source lines the encoding never saw, and random strings of awkward characters."""
  lines = [line for f in sorted((_STDLIB / "email").glob("*.py"))
           for line in f.read_text().splitlines(keepends=True)][:3000]
  rng = random.Random(0)
  alphabet = "ab_Z09 \t\n\r()'\"\\#é中🙂\x00"
  return lines + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
                  for _ in range(1000)]


def test_the_converted_file_encodes_as_tiktoken(encoding, tmp_path):
  ranks, encoding = encoding
  tok = tiktoken_bpe.from_file(_tiktoken_file(ranks, tmp_path / "small.tiktoken"), _VOCAB)
  tokenizer_lib.save(tok, tmp_path / "tokenizer.json")
  tok = tokenizer_lib.load(tmp_path / "tokenizer.json")  # a workdir tokenizer, as tools load it
  assert tokenizer_lib.end_of_text_id(tok) == _VOCAB - 1
  strings = _strings()
  assert len(strings) == 4000
  differ = [s for s in strings if tok.encode(s).ids != encoding.encode(s)]
  assert not differ, (len(differ), differ[:3])
  assert all(tok.decode(encoding.encode(s)) == s for s in strings[:500])


def test_a_tokenizer_of_another_size_is_refused(encoding, tmp_path):
  f = _tiktoken_file(encoding[0], tmp_path / "small.tiktoken")
  with pytest.raises(UserError, match="vocab_size=2048 needs 2047"):
    tiktoken_bpe.from_file(f, 2048)


def test_a_file_that_is_not_tiktoken_is_refused(tmp_path):
  f = tmp_path / "bad.tiktoken"
  f.write_text("not-base64!! 0\n")
  with pytest.raises(UserError, match="line 1, is not 'base64-token rank'"):
    tiktoken_bpe.read_tiktoken(str(f))


def _data_gym_files(ranks: dict[bytes, int], directory: pathlib.Path) -> str:
  """The encoding's merges as GPT-2's data-gym files (the released tinypython_2k format)."""
  chars = tiktoken_bpe._byte_chars()  # pylint: disable=protected-access
  text = lambda b: "".join(chars[x] for x in b)
  by_rank = sorted((r, t) for t, r in ranks.items() if len(t) > 1)
  merges = []
  for rank, token in by_rank:  # the pair each token was made from: both parts older
    cut = next(i for i in range(1, len(token))
               if ranks.get(token[:i], rank) < rank and ranks.get(token[i:], rank) < rank)
    merges.append(f"{text(token[:cut])} {text(token[cut:])}")
  bytes_first = sorted(range(256), key=lambda b: (not (chr(b).isprintable() and b != 32), b))
  encoder = {chars[b]: i for i, b in enumerate(bytes_first)}
  encoder |= {text(t): 256 + i for i, (_, t) in enumerate(by_rank)}
  encoder[tokenizer_lib.END_OF_TEXT] = len(ranks)
  directory.mkdir()
  (directory / "vocab.bpe").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
  (directory / "encoder.json").write_text(json.dumps(encoder))
  return str(directory)


def test_the_data_gym_files_read_as_tiktoken_reads_them(encoding, tmp_path, monkeypatch):
  directory = _data_gym_files(encoding[0], tmp_path / "tinypython")
  monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken would cache the files by path
  ranks = tiktoken_load.data_gym_to_mergeable_bpe_ranks(f"{directory}/vocab.bpe",
                                                         f"{directory}/encoder.json")
  assert tiktoken_bpe.read_data_gym(directory) == ranks
  reference = tiktoken.Encoding("gym", pat_str=tiktoken_bpe.TINYPYTHON_PATTERN,
                                mergeable_ranks=ranks, special_tokens={})
  tok = tiktoken_bpe.from_file(directory, _VOCAB)
  strings = _strings()[::8]
  assert [tok.encode(s).ids for s in strings] == [reference.encode(s) for s in strings]
