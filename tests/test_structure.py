"""The one description of the model's structure agrees with the model it describes."""

import functools

import jax
import numpy as np
import pytest
from flax import nnx

import tiny_setup
from sparse_gpt import model
from sparse_gpt import optim
from sparse_gpt import param_kinds
from sparse_gpt import sharding
from sparse_gpt import structure
from sparse_gpt.pruning import edges as edges_lib
from sparse_gpt.pruning.nodes import Layout, Node

_cfg = functools.partial(tiny_setup.model_config, n_layer=2, d_model=8, n_head=2, d_head=4,
                         d_mlp=16, n_ctx=16)
_CONFIGS = {"default": {}, "everything_on": dict(pos_embedding=True, bigram=True,
                                                 logits_bias=True),
            "no_sink": dict(attn_sink=False),
            "released_options": dict(bias=False, tied_unembed=True, activation="relu")}


def _named(params):
  return {param_kinds.path_name(path): x
          for path, x in jax.tree_util.tree_flatten_with_path(params)[0]}


@pytest.mark.parametrize("flags", _CONFIGS.values(), ids=_CONFIGS.keys())
def test_every_parameter_has_exactly_one_entry_with_an_axis_per_dimension(flags):
  named = _named(model.abstract(_cfg(**flags))[1])
  for name, x in named.items():
    matches = [p.path for p in structure.PARAMS if structure.matches(name, p.path)]
    assert len(matches) == 1, (name, matches)
    assert len(structure.param(name).axes) in (0, x.ndim), name


def test_with_every_option_on_every_entry_describes_a_parameter():
  everything = _named(model.abstract(_cfg(**_CONFIGS["everything_on"]))[1])
  assert {structure.param(n).path for n in everything} == {p.path for p in structure.PARAMS}


def test_kinds_follow_the_description():
  named = _named(model.abstract(_cfg(pos_embedding=True, bigram=True))[1])
  kind = lambda name, sparse_biases=True: param_kinds.kind_of(name, sparse_biases)
  assert [kind(n) for n in ("blocks.1.attn.q.kernel", "blocks.0.mlp.down.kernel")] == [
      structure.HIDDEN] * 2
  assert {kind(n) for n in ("embed.embedding", "pos_embed.embedding", "unembed.kernel",
                            "blocks.0.mlp.up.bias")} == {structure.EMBED}
  assert kind("blocks.0.attn.o.bias", sparse_biases=False) == structure.BIAS
  assert {kind(n) for n in ("bigram", "blocks.0.attn.sink", "final_norm.gain")} == {
      structure.DENSE}
  assert sum(k == structure.HIDDEN for k in map(kind, named)) == 2 * 6


@pytest.mark.parametrize("flags", _CONFIGS.values(), ids=_CONFIGS.keys())
def test_layout_and_edges_agree_with_the_model(flags):
  cfg = _cfg(**flags)
  graphdef, params = model.init(cfg, jax.random.key(0))
  layout = Layout(cfg.model)
  named = _named(params)
  for layer in range(cfg.model.n_layer):
    for kernel in structure.KERNELS:
      source, target = (layout.by_name[f"{layer}.{site}"] for site in kernel.joins)
      assert named[structure.layer_path(kernel, layer)].shape == (source.size, target.size)
  _, recorded = model.forward(graphdef, params, np.zeros((1, 4), np.int32), record="all")
  assert {name: x.shape[-1] for name, x in recorded.items()} == {
      loc.name: loc.size for loc in layout.locations}


def test_an_undescribed_parameter_fails_loudly_instead_of_being_replicated():
  cfg = _cfg()
  net = model.Transformer(model.model_config(cfg), nnx.Rngs(params=0))
  mlp = net.blocks[0].mlp
  mlp.fc, mlp.up = mlp.up, None  # a renamed layer: "blocks.0.mlp.fc.kernel" and ".bias"
  params = nnx.split(net)[1]
  mesh = sharding.make_mesh(cfg.mesh)
  for use in (lambda: sharding.tree_shardings(params, mesh),
              lambda: param_kinds.kinds(params, True), lambda: optim.make(cfg, params)):
    with pytest.raises(structure.UnknownParameter,
                       match=r"'blocks\.0\.mlp\.fc\.(kernel|bias)' matches none"):
      use()


def test_optimizer_state_shards_like_its_parameters_and_counts_are_replicated():
  mesh = jax.make_mesh((1, 1, 1), sharding.AXES)
  moment = sharding.spec_for("inner.1.0.mu.blocks.0.attn.q.kernel", (8, 8), mesh)
  assert moment == sharding.spec_for("blocks.0.attn.q.kernel", (8, 8), mesh)
  assert sharding.spec_for("inner.1.0.count", (), mesh) == jax.sharding.PartitionSpec()
  with pytest.raises(structure.UnknownParameter):
    sharding.spec_for("inner.1.0.mu.blocks.0.attn.q.weight", (8, 8), mesh)


def test_a_node_keeps_its_circuit_file_keys():
  node = Node("attn.q", 1, 6, 1, 2)
  assert node.to_json() == {"location": "attn.q", "layer": 1, "index": 6, "head": 1,
                            "channel": 2}
  assert Node.from_json(node.to_json()) == node
  assert Node.from_json({"location": "mlp.out", "layer": 0, "index": 3}) == Node(
      "mlp.out", 0, 3)


def test_edge_ends_are_positions_in_the_sorted_kept_nodes():
  cfg = _cfg()
  _, params = model.init(cfg, jax.random.key(0))
  layout = Layout(cfg.model)
  wanted = (Node("mlp.out", 0, 1), Node("mlp.in", 0, 2), Node("mlp.neuron", 0, 5))
  kept = [layout.index(n) for n in wanted]  # not in layout order
  nodes = [layout.node(n) for n in sorted(kept)]
  up, down = (np.asarray(params["blocks"][0]["mlp"][k]["kernel"][...]) for k in ("up", "down"))
  ends = {(nodes[e.source_node], nodes[e.target_node], e.param, e.value)
          for e in edges_lib.between(params, layout, kept)}
  assert ends == {
      (wanted[1], wanted[2], "blocks.0.mlp.up.kernel", float(up[2, 5])),
      (wanted[2], wanted[0], "blocks.0.mlp.down.kernel", float(down[5, 1]))}
