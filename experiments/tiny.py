"""The CPU default: a small weight-sparse model that trains in minutes on 2 cores."""

from sparse_gpt import config


def get_config():
  c = config.defaults()
  c.model.n_layer = 2
  c.model.d_model = 128
  c.model.n_head = 4
  c.model.d_head = 32
  c.model.d_mlp = 512
  c.model.n_ctx = 128
  # Measured: with learned positions single_double_quote reached 72%/80% held-out
  # accuracy at steps 200/400, against 65%/75% without. Finding the most recent opening
  # quote needs position, which two layers barely recover from the causal mask alone.
  c.model.pos_embedding = True
  c.sparsity.target_density = 1 / 4
  c.sparsity.embed_density = 1 / 2
  c.train.steps = 1000
  c.train.batch_size = 32
  # Swept at 1000 steps (validation loss; held-out tasks at >= 90% accuracy):
  # 5e-3: 3.676 (0), 1e-2: 3.569 (1), 2e-2: 3.478 (1), 4e-2: 3.467 (3), 8e-2: 3.454 (6).
  # The dense baseline's best is 3e-3 (docs/tiny_results.md).
  c.train.learning_rate = 8e-2
  # The released code's rule: on this small model the gradient RMS is ~5e-4, and with
  # Adam's eps of 0.1, clipping alone would shrink every step ~200x.
  c.train.grad_rms_mode = "rescale"
  return c
