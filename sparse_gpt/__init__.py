"""Weight-sparse GPT transformers and the circuits pruned from them.

In a notebook (docs/api.md):

  import sparse_gpt
  run = sparse_gpt.load_run("runs/tiny")
  run.logits(["def f(x):"]), run.activations(tokens_BxL, ["0.mlp.neuron"])
  sparse_gpt.load_circuit("runs/tiny/circuits/single_double_quote.json").score(run, pairs)

The API loads on first use (PEP 562), so `import sparse_gpt.config` and the other light
modules stay light: no Orbax, no pruning pipeline.
"""

_API = ("Circuit", "Run", "Score", "load_circuit", "load_run")


def __getattr__(name: str):
  if name in _API:
    from sparse_gpt import api  # pylint: disable=g-import-not-at-top
    return getattr(api, name)
  raise AttributeError(f"module 'sparse_gpt' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_API))
