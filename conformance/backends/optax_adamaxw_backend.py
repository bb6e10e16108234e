"""optax.adamaxw adapter: optax's own AdaMax with weight decay, beside optax.adamax (optax_backend.py).

A user of optax who wants weight decay meets `optax.adamaxw`, not the L2 chain the `optax` adapter builds:
it adds wd*p to the Adamax update before the learning rate scales it (decoupled, as Keras), and decays by
default (weight_decay=1e-4). The session, the model and every jax/optax import are optax_backend's; this
backend only names the transform.
"""
from __future__ import annotations

from conformance.backends.optax_backend import OptaxBackend


class OptaxAdamaxWBackend(OptaxBackend):
    name = "optax_adamaxw"
    transform = "adamaxw"


BACKEND = OptaxAdamaxWBackend()
