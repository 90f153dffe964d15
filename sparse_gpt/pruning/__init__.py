"""Circuit pruning (docs/method.md, pruning and circuits): learned node masks, exact-size
circuits, and a battery of checks that they are the model's real mechanism.

  pipeline.prune                one task end to end, returns a circuit.Circuit
  circuit.load / logits_fn      read a circuit file back and run it as a model
  optimize.train_masks          the jitted, vmapped mask optimisation

The command-line front end (launch.prune, `make demo`) is launch/prune_cli.py.
"""
