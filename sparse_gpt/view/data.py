"""Every number a circuit page shows, computed from the run and embedded as JSON.

The page needs neither the model nor a server: activations, top contexts, ablation
losses, candidate probabilities and attention patterns are all computed here, each by one
jitted program reused across circuits of the same model (batched: one forward serves many
ablations, one pass over the validation windows serves every node's top contexts).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from sparse_gpt import model
from sparse_gpt.errors import UserError
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.pruning import edges as edges_lib
from sparse_gpt.pruning import node_means
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.pruning.subject import Subject
from sparse_gpt.tasks import loss as loss_lib
from sparse_gpt.tasks import pairs_file
from sparse_gpt.tasks import resolve

# Held-out pairs of a registered task that the ablation losses are scored on: the same
# as `launch.tasks --circuit=FILE --task=TASK --n_pairs=16` (split heldout, seed 0).
N_PAIRS = 16
SPLIT, SEED = "heldout", 0
EXAMPLE_PAIRS = 3  # pairs shown token by token
CONTEXT_WINDOWS = 64  # validation windows searched for top-activating contexts
TOP_CONTEXTS = 10
CONTEXT_LEFT, CONTEXT_RIGHT = 12, 4  # tokens shown each side of a top context's token
_SEQUENCES_PER_FORWARD = 512  # ablation variants x sequences in one batched forward
_WINDOWS_PER_FORWARD = 8
_ROW_MULTIPLE = 16  # a task's sequences are padded to a multiple of this many rows


def node_name(node) -> str:
  """The page's name of a node, `data-node`: "{layer}.{location}.{index}"."""
  return f"{node.layer}.{node.site}.{node.index}"


def task_batch(run, c: circuit_lib.Circuit) -> resolve.TaskBatch:
  """The pairs the page scores the circuit on, as `launch.tasks --circuit` reads them: a
  registered task's first N_PAIRS held-out pairs, or the whole pairs file."""
  n_ctx = run.config.model.n_ctx
  if c.task["source"] == "pairs_file":
    return pairs_file.resolve_file(c.task["pairs_file"], run.tokenizer, n_ctx)
  return resolve.resolve_task(c.task["name"], run.tokenizer, n_ctx, SPLIT, N_PAIRS, SEED)


def scored_command(c: circuit_lib.Circuit) -> str:
  """The launch.tasks flags that score the same pairs as the page."""
  if c.task["source"] == "pairs_file":
    return f"--pairs={c.task['pairs_file']}"
  return f"--task={c.task['name']} --n_pairs={N_PAIRS}"


# --- Top-activating contexts: one pass over the windows for every node of the model.

@functools.partial(jax.jit, static_argnums=(0, 1, 4))
def _window_top(graphdef, layout, params, tokens_BxL, k):
  _, recorded = model.forward(graphdef, params, tokens_BxL, record="all",
                              positions_B=jnp.zeros(tokens_BxL.shape[0], jnp.int32))
  acts_NxT = layout.flatten(recorded).reshape(-1, layout.n_nodes).T
  return jax.lax.top_k(acts_NxT, k)


@dataclasses.dataclass(frozen=True)
class Contexts:
  """The validation windows and, per node, its highest activations there."""
  tokens_WxL: np.ndarray
  values_NxT: np.ndarray  # descending
  where_NxT: np.ndarray  # flat position window * L + token of each value


def top_contexts(run, layout: Layout, windows_WxL: np.ndarray,
                 k: int = TOP_CONTEXTS) -> Contexts:
  """Each node's k highest activations over every token of the windows (full model)."""
  length = windows_WxL.shape[1]
  values, where = [], []
  for start in range(0, len(windows_WxL), _WINDOWS_PER_FORWARD):
    chunk = jnp.asarray(windows_WxL[start:start + _WINDOWS_PER_FORWARD], jnp.int32)
    v_NxK, i_NxK = _window_top(run.graphdef, layout, run.params, chunk,
                               min(k, chunk.size))
    values.append(np.asarray(v_NxK))
    where.append(np.asarray(i_NxK) + start * length)
  values_NxC, where_NxC = np.concatenate(values, 1), np.concatenate(where, 1)
  # Stable, so among equal values the earliest position comes first.
  order_NxC = np.argsort(-values_NxC, axis=1, kind="stable")[:, :k]
  return Contexts(np.asarray(windows_WxL), np.take_along_axis(values_NxC, order_NxC, 1),
                  np.take_along_axis(where_NxC, order_NxC, 1))


# --- Single-node ablations: every "circuit minus one node" in a few batched forwards.

@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _variant_candidates(graphdef, layout, layer, params, keep_N, layer_keep_KxM, fill,
                        batch):
  """Candidate logits of K variants that differ from keep_N only in `layer`'s nodes
  (layer_keep_KxM): under vmap, everything below that layer is computed once."""
  first = min(loc.start for loc in layout.locations if loc.layer == layer)

  def one(layer_keep_M):
    edits = {}
    for loc in layout.locations:
      keep = (layer_keep_M[loc.start - first:loc.start - first + loc.size]
              if loc.layer == layer else keep_N[loc.start:loc.start + loc.size])
      edits[loc.name] = model.NodeEdit(keep, fill[..., loc.start:loc.start + loc.size])
    # With positions_B the model runs its last block only at those positions.
    last_BxV, _ = model.forward(graphdef, params, batch.tokens_BxL, edits,
                                positions_B=batch.last_B)
    return loss_lib.candidate_logits(last_BxV, batch.correct_B, batch.incorrect_B)
  return jax.vmap(one)(layer_keep_KxM)


def ablation_losses(run, layout: Layout, keep_N, fill, calibration,
                    batch: resolve.TaskBatch, n: int) -> tuple[float, np.ndarray]:
  """(the circuit's task loss, [kept nodes] its loss with each kept node ablated too).

  Calibrated, as `launch.tasks --circuit` scores a circuit, over the first `n` rows of
  `batch` (the rest are padding). The variants go layer by layer, in chunks of one size,
  so that every circuit of the model shares n_layer compiled programs.
  """
  keep = np.asarray(keep_N, np.float32)
  kept_K = np.flatnonzero(keep)
  per_forward = max(1, _SEQUENCES_PER_FORWARD // len(batch))
  by_layer = np.array([loc.layer for loc in layout.locations for _ in range(loc.size)])
  # Variant 0, the circuit itself, rides in layer 0's first chunk.
  variants = {layer: [None] * (layer == 0) + [k for k in kept_K if by_layer[k] == layer]
              for layer in range(run.config.model.n_layer)}
  correct, incorrect = [], []
  for layer, ablated in variants.items():
    if not ablated:
      continue
    span = np.flatnonzero(by_layer == layer)
    keep_VxM = np.repeat(keep[span][None], -(-len(ablated) // per_forward) * per_forward, 0)
    for v, k in enumerate(ablated):
      if k is not None:
        keep_VxM[v, k - span[0]] = 0.0
    for start in range(0, len(keep_VxM), per_forward):
      c_VxB, i_VxB = _variant_candidates(
          run.graphdef, layout, layer, run.params, jnp.asarray(keep),
          jnp.asarray(keep_VxM[start:start + per_forward]), fill, batch)
      correct.append(c_VxB)
      incorrect.append(i_VxB)
    correct[-1], incorrect[-1] = (correct[-1][:len(ablated) % per_forward or per_forward],
                                  incorrect[-1][:len(ablated) % per_forward or per_forward])
  # Calibrated once for all variants: op by op, per chunk, it would cost more than the
  # forwards. Variants are in flat index order, as kept_K.
  correct_VxB = jnp.concatenate(correct)[:, :n]
  incorrect_VxB = jnp.concatenate(incorrect)[:, :n]
  ids = lambda ids_B: jnp.broadcast_to(jnp.asarray(ids_B[:n]), correct_VxB.shape)
  losses_V = np.asarray(jax.vmap(lambda c, i: loss_lib.binary_loss(c, i)[0])(
      calibration.apply(correct_VxB, ids(batch.correct_B)),
      calibration.apply(incorrect_VxB, ids(batch.incorrect_B))))
  return float(losses_V[0]), losses_V[1:]


# --- Example pairs through the full model and the circuit.

@functools.partial(jax.jit, static_argnums=(0, 1))
def _examples(graphdef, layout, params, keep_N, fill, tokens_BxL):
  full_BxLxV, _ = model.forward(graphdef, params, tokens_BxL)
  circuit_BxLxV, recorded = model.forward(graphdef, params, tokens_BxL,
                                          layout.edits(keep_N, fill), record="all")
  return full_BxLxV, circuit_BxLxV, recorded


def _probabilities(logits_BxV, batch) -> list[list[float]]:
  probs_BxV = jax.nn.softmax(jnp.asarray(logits_BxV, jnp.float32), -1)
  rows = np.arange(len(batch))
  return np.stack([np.asarray(probs_BxV)[rows, np.asarray(batch.correct_B)],
                   np.asarray(probs_BxV)[rows, np.asarray(batch.incorrect_B)]], 1).tolist()


def _heads(c: circuit_lib.Circuit) -> list[tuple[int, int]]:
  """(layer, head) of every head with a kept query, key or value channel."""
  return sorted({(n.layer, n.head) for n in c.nodes if n.head is not None})


def _round(x, digits: int = 4):
  return np.round(np.asarray(x, np.float64), digits).tolist()


# --- One circuit's page data.

class Model:
  """What the pages of one checkpoint share: its layout, node means, and corpus."""

  def __init__(self, run, contexts_windows: int = CONTEXT_WINDOWS):
    self.run = run
    self.layout = Layout(run.config.model)
    self._means = {}
    windows_WxL = node_means.validation_windows(run, contexts_windows)
    self.contexts = top_contexts(run, self.layout, windows_WxL)
    self.pieces = [[run.tokenizer.decode([int(t)]) for t in row]
                   for row in self.contexts.tokens_WxL]
    self.weights = edges_lib.named_params(run.params)

  def means(self, n_windows: int) -> jax.Array:
    if n_windows not in self._means:
      self._means[n_windows] = node_means.load_or_compute(self.run, self.layout, n_windows)
    return self._means[n_windows]


def check(c: circuit_lib.Circuit, cfg, workdir: str) -> None:
  """Refuses, before any model loads, a circuit whose page cannot be drawn from the run
  in `workdir` (config `cfg`): one with no nodes, or one pruned from another run."""
  if not c.nodes:
    raise UserError(f"circuit file {c.path} has no nodes: there is nothing to draw. Prune "
                    "the task again (python -m launch.prune).")
  if circuit_lib.config_hash(cfg) != c.model["config_hash"]:
    raise UserError(f"circuit file {c.path} was pruned from another run "
                    f"({c.model['workdir']}), not from {workdir}: view it with "
                    f"--workdir={c.model['workdir']}.")


def shaped(batch: resolve.TaskBatch, length: int, rows: int) -> resolve.TaskBatch:
  """`batch` padded to `length` tokens and `rows` rows (copies of row 0, never scored),
  so that the circuits of a run share one compiled program."""
  tokens_BxL = np.zeros((len(batch), length), np.int32)
  tokens_BxL[:, :batch.tokens_BxL.shape[1]] = np.asarray(batch.tokens_BxL)[:, :length]
  batch = dataclasses.replace(batch, tokens_BxL=tokens_BxL)
  return batch.rows(np.concatenate([np.arange(len(batch)),
                                    np.zeros(rows - len(batch), np.int64)]))


def common_length(run, batches: list[resolve.TaskBatch]) -> int:
  """The padded length that fits every batch (resolve.padded's rounding)."""
  return max(resolve.padded(b, run.config.model.n_ctx).tokens_BxL.shape[1] for b in batches)


def circuit_data(m: Model, c: circuit_lib.Circuit, task: resolve.TaskBatch,
                 length: int) -> dict:
  """The JSON a circuit page embeds (page.py draws it; view.js reads it).

  `task`: task_batch(run, c); `length`: the padded length of every page's batches.
  """
  run, layout = m.run, m.layout
  circuit_lib.check_run(c, run)
  keep_N = c.keep(layout)
  flat_K = np.array([layout.index(n) for n in c.nodes])
  kind = c.ablation["kind"]
  means_N = (m.means(c.ablation["mean_windows"]) if kind == "mean"
             else jnp.zeros(layout.n_nodes, jnp.float32))
  subject = Subject(run.graphdef, run.params, layout, means_N, kind)
  rows = -(-len(task) // _ROW_MULTIPLE) * _ROW_MULTIPLE
  batch = shaped(task, length, rows)
  circuit_loss, ablated = ablation_losses(run, layout, keep_N, subject.fill(batch),
                                          c.calibration, batch, len(task))
  # ablation_losses orders the kept nodes by flat index; the file lists them its own way.
  ablated_K = ablated[np.searchsorted(np.flatnonzero(np.asarray(keep_N)), flat_K)]

  n_examples = min(2 * EXAMPLE_PAIRS, len(task))
  examples = shaped(task.rows(np.arange(n_examples)), length, 2 * EXAMPLE_PAIRS)
  full_BxLxV, circuit_BxLxV, recorded = _examples(
      run.graphdef, layout, run.params, keep_N, subject.fill(examples),
      jnp.asarray(examples.tokens_BxL))
  examples = examples.rows(np.arange(n_examples))
  last = lambda logits_BxLxV: loss_lib.last_logits(logits_BxLxV, jnp.asarray(examples.last_B))
  acts_BxLxK = np.asarray(layout.flatten(recorded))[:n_examples, :, flat_K]
  lengths = [int(i) + 1 for i in examples.last_B]
  tok = run.tokenizer
  sequences = [{"tokens": resolve.pieces(tok, examples.tokens_BxL[b, :lengths[b]].tolist()),
                "correct": tok.decode([int(examples.correct_B[b])]),
                "incorrect": tok.decode([int(examples.incorrect_B[b])])}
               for b in range(len(examples))]
  full_p = _probabilities(last(full_BxLxV[:n_examples]), examples)
  circuit_p = _probabilities(c.calibration.apply(last(circuit_BxLxV[:n_examples])), examples)
  for b, seq in enumerate(sequences):
    # Significant digits, not decimals: a circuit's vocabulary probabilities can be tiny.
    seq["full"] = [float(f"{p:.4g}") for p in full_p[b]]
    seq["circuit"] = [float(f"{p:.4g}") for p in circuit_p[b]]

  heads, probs = [], {}
  split = lambda t: t[:2].reshape(*t[:2].shape[:2], run.config.model.n_head, -1)
  for layer, head in _heads(c):
    if layer not in probs:  # pair 1's two prompts, every head of the layer at once
      sink = m.weights.get(f"blocks.{layer}.attn.sink")
      probs[layer] = np.asarray(model.attention_probs(
          split(recorded[f"{layer}.attn.q"]), split(recorded[f"{layer}.attn.k"]),
          None if sink is None else jnp.asarray(sink)))
    heads.append({"layer": layer, "head": head, "patterns": [
        _round(probs[layer][b, head, :lengths[b], :lengths[b]], 3)
        for b in range(min(2, len(examples)))]})

  ctx = m.contexts
  window = ctx.tokens_WxL.shape[1]
  means = np.asarray(means_N)
  nodes = []
  for k, n in enumerate(c.nodes):
    where = ctx.where_NxT[flat_K[k]]
    nodes.append({
        "name": node_name(n), "label": n.label(),
        "mean": float(means[flat_K[k]]) if kind == "mean" else None,
        "ablated_loss": float(ablated_K[k]),
        "acts": [_round(acts_BxLxK[b, :lengths[b], k], 3) for b in range(len(examples))],
        "top": [[int(w // window), int(w % window), round(float(v), 4)]
                for w, v in zip(where, ctx.values_NxT[flat_K[k]])]})
  used = sorted({t[0] for n in nodes for t in n["top"]})
  return {
      "task": c.task["name"], "ablation": kind, "circuit_loss": circuit_loss,
      "scored_on": f"{len(task) // 2} pairs ({len(task)} sequences): launch.tasks "
                   f"--circuit=FILE {scored_command(c)}",
      "nodes": nodes, "sequences": sequences, "heads": heads,
      "context": {"left": CONTEXT_LEFT, "right": CONTEXT_RIGHT,
                  "windows": {str(w): m.pieces[w] for w in used}}}

