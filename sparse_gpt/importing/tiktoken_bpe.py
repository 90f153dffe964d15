"""A tiktoken encoding as a Hugging Face `tokenizers` BPE that encodes every string alike.

tiktoken splits text with its regex, then within each piece repeatedly joins the adjacent
pair whose join has the lowest rank (a piece that is itself a token is taken whole). A
BPE with one merge (a, b) for every split of a token into two tokens, ranked by the
token's rank, makes the same choices: `ignore_merges` takes whole-piece tokens first, and
a byte-level alphabet maps bytes to the characters `tokenizers` merges.
"""

import base64
import json

import tokenizers
from tokenizers import decoders, models, pre_tokenizers

from sparse_gpt import storage
from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt.errors import UserError

# The released tinypython_2k encoding's split pattern (circuit_sparsity's tiktoken_ext).
TINYPYTHON_PATTERN = (r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*"
                      r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def read_tiktoken(path: str) -> dict[bytes, int]:
  """The mergeable ranks of a .tiktoken file: one `base64(token) rank` per line."""
  f = storage.path(path)
  if not f.exists():
    raise UserError(f"--tokenizer={path} does not exist; give a .tiktoken file or a "
                    "directory holding vocab.bpe and encoder.json.")
  ranks = {}
  for n, line in enumerate(f.read_bytes().splitlines(), 1):
    if not line.strip():
      continue
    try:
      token, rank = line.split()
      ranks[base64.b64decode(token, validate=True)] = int(rank)
    except ValueError:
      raise UserError(f"{path}, line {n}, is not 'base64-token rank': {line[:60]!r}. "
                      "Give a .tiktoken file (tiktoken.load.dump_tiktoken_bpe writes one)."
                      ) from None
  return ranks


def read_data_gym(directory: str) -> dict[bytes, int]:
  """The mergeable ranks of GPT-2's data-gym files (vocab.bpe + encoder.json), the format of
  the released tinypython_2k: as tiktoken.load.data_gym_to_mergeable_bpe_ranks reads them."""
  d = storage.path(directory)
  chars = _byte_chars()
  to_bytes = {c: b for b, c in chars.items()}
  decode = lambda s: bytes(to_bytes[c] for c in s)
  # Data gym ranks the bytes with printable characters (not the space) first.
  order = sorted(range(256), key=lambda b: (not _printable(b), b))
  ranks = {bytes([b]): i for i, b in enumerate(order)}
  try:
    merges = (d / "vocab.bpe").read_text().split("\n")[1:-1]  # after a version line
    for rank, line in enumerate(merges, 256):
      first, second = line.split()
      ranks[decode(first) + decode(second)] = rank
    encoder = {decode(k): v for k, v in json.loads((d / "encoder.json").read_text()).items()
               if k not in ("<|endoftext|>", "<|startoftext|>")}
  except (OSError, ValueError, KeyError) as e:
    raise UserError(f"--tokenizer={directory}: not a data-gym BPE (vocab.bpe + encoder.json): "
                    f"{type(e).__name__}: {e}.") from None
  if encoder != ranks:
    raise UserError(f"--tokenizer={directory}: encoder.json disagrees with the merges of "
                    "vocab.bpe; the two files come from different tokenizers.")
  return ranks


def _printable(b: int) -> bool:
  return chr(b).isprintable() and chr(b) != " "


def _byte_chars() -> dict[int, str]:
  """GPT-2's byte -> character map (tokenizers' ByteLevel alphabet, data gym's): a
  printable byte is its own character, the n-th other byte is chr(256 + n)."""
  others = [b for b in range(256) if not _printable(b)]
  return {b: chr(b) if _printable(b) else chr(256 + others.index(b)) for b in range(256)}


def to_tokenizer(ranks: dict[bytes, int], pattern: str,
                 special_tokens: dict[str, int]) -> tokenizers.Tokenizer:
  """The Hugging Face tokenizer of tiktoken's Encoding(pat_str=pattern, ranks, specials)."""
  missing = [b for b in range(256) if bytes([b]) not in ranks]
  if missing:
    raise UserError(f"the encoding has no token for byte {missing[0]} ({len(missing)} "
                    "bytes missing): a byte-level BPE needs all 256.")
  if len(set(ranks.values())) != len(ranks):
    raise UserError("the encoding gives two tokens the same rank; ranks are token ids.")
  chars = _byte_chars()
  text = lambda b: "".join(chars[x] for x in b)
  merges = []
  for token, rank in ranks.items():
    for cut in range(1, len(token)):
      left, right = token[:cut], token[cut:]
      if left in ranks and right in ranks:
        merges.append(((rank, ranks[left], ranks[right]), (text(left), text(right))))
  merges.sort()
  bpe = models.BPE(vocab={text(t): r for t, r in ranks.items()},
                   merges=[pair for _, pair in merges], ignore_merges=True)
  tok = tokenizers.Tokenizer(bpe)
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Split(tokenizers.Regex(pattern), behavior="isolated"),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
  tok.decoder = decoders.ByteLevel()
  taken = set(ranks.values())
  for name, i in sorted(special_tokens.items(), key=lambda kv: kv[1]):
    if i in taken:
      raise UserError(f"special token {name} has id {i}, which a BPE token already has.")
    if i != tok.get_vocab_size():
      raise UserError(f"special token {name} has id {i}; the tokenizer has "
                      f"{tok.get_vocab_size()} tokens, so the next id is "
                      f"{tok.get_vocab_size()}.")
    tok.add_special_tokens([tokenizers.AddedToken(name, special=True, normalized=False)])
  return tok


def from_file(path: str, vocab_size: int, pattern: str = TINYPYTHON_PATTERN
              ) -> tokenizers.Tokenizer:
  """The workdir tokenizer of a .tiktoken file, or of a directory holding the data-gym
  files, for a model of `vocab_size` tokens.

  `<|endoftext|>` is the last id, as in tinypython_2k (2047 of 2048).
  """
  ranks = read_data_gym(path) if storage.path(path).is_dir() else read_tiktoken(path)
  if len(ranks) != vocab_size - 1 or max(ranks.values()) != vocab_size - 2:
    raise UserError(f"--tokenizer={path} has {len(ranks)} tokens ranked 0..."
                    f"{max(ranks.values())}; the model's vocab_size={vocab_size} needs "
                    f"{vocab_size - 1} (0..{vocab_size - 2}) plus {tokenizer_lib.END_OF_TEXT} "
                    f"at {vocab_size - 1}. Give the model's own encoding.")
  return to_tokenizer(ranks, pattern, {tokenizer_lib.END_OF_TEXT: vocab_size - 1})
