"""The bridge loss terms of one batch, per residual site.

For site s with dense residual e and sparse residual d (each model on the same tokens):
  nmse_encode[s] = NMSE(encode(e), d)        nmse_decode[s] = NMSE(decode(d), e)
  kl_sparse[s] = KL(dense logits || the sparse model run from s on encode(e))
  kl_dense[s]  = KL(dense logits || the dense model run from s on decode(d))
NMSE is the squared error over the target's mean square (residuals have no mean to
remove, as RMSNorm subtracts none). The dense model is frozen: its parameters enter
through stop_gradient, so no gradient reaches them, while gradients do flow through it
into the decoder and the sparse model.
"""

import jax
import jax.numpy as jnp
import optax

from sparse_gpt import model
from sparse_gpt.bridge import params as bridge_params

TERMS = ("nmse_encode", "nmse_decode", "kl_sparse", "kl_dense")


def nmse(pred: jax.Array, target: jax.Array) -> jax.Array:
  return jnp.mean(jnp.square(pred - target)) / jnp.mean(jnp.square(target))


def kl(p_logits_BxLxV: jax.Array, q_logits_BxLxV: jax.Array) -> jax.Array:
  """KL(p || q) per position, averaged over positions."""
  log_p, log_q = (jax.nn.log_softmax(x, -1) for x in (p_logits_BxLxV, q_logits_BxLxV))
  return jnp.mean(jnp.sum(jnp.exp(log_p) * (log_p - log_q), -1))


def terms(sparse_graphdef, sparse_params, dense_graphdef, dense_params,
          bridges: bridge_params.Bridges, batch_BxL1: jax.Array, afrac: float) -> dict:
  """{"loss": the sparse model's cross-entropy, each of TERMS: [S] per site, and
  "dense_loss_decoded": [S] the cross-entropy of the dense model run from each site on
  decoded sparse residuals, "dense_loss": the dense model's own}."""
  tokens_BxL, targets_BxL = batch_BxL1[:, :-1], batch_BxL1[:, 1:]
  dense_params = jax.lax.stop_gradient(dense_params)
  ce = lambda logits: optax.softmax_cross_entropy_with_integer_labels(
      logits, targets_BxL).mean()
  dense_logits, dense_res = model.residual_forward(dense_graphdef, dense_params, tokens_BxL)
  sparse_logits, sparse_res = model.residual_forward(sparse_graphdef, sparse_params,
                                                     tokens_BxL)
  per_site = {k: [] for k in (*TERMS, "dense_loss_decoded")}
  for s, site in enumerate(sparse_res):
    encoded = bridge_params.encode(bridges, s, dense_res[site], afrac)
    decoded = bridge_params.decode(bridges, s, sparse_res[site])
    sparse_from, _ = model.residual_forward(sparse_graphdef, sparse_params, tokens_BxL,
                                            start=site, start_BxLxD=encoded)
    dense_from, _ = model.residual_forward(dense_graphdef, dense_params, tokens_BxL,
                                           start=site, start_BxLxD=decoded)
    per_site["nmse_encode"].append(nmse(encoded, sparse_res[site]))
    per_site["nmse_decode"].append(nmse(decoded, dense_res[site]))
    per_site["kl_sparse"].append(kl(dense_logits, sparse_from))
    per_site["kl_dense"].append(kl(dense_logits, dense_from))
    per_site["dense_loss_decoded"].append(ce(dense_from))
  return dict(loss=ce(sparse_logits), dense_loss=ce(dense_logits),
              **{k: jnp.stack(v) for k, v in per_site.items()})


def total(terms_: dict, bridge_cfg) -> jax.Array:
  """The training objective: cross-entropy + each term's weight x its mean over sites."""
  return terms_["loss"] + sum(bridge_cfg[f"{k}_weight"] * jnp.mean(terms_[k]) for k in TERMS)
