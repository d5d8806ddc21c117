"""Straight-through estimators for binary masks, written once with ``keras.ops``.

A binary mask is not differentiable, so supermask learners compute the forward pass
with a hard 0/1 mask and send the gradient "straight through" to a soft quantity
(a probability, or the magnitude of a score), as if the hard mask were that quantity.

* ``straight_through(hard, soft)``: forward value ``hard`` (bit-exact), gradient of
  ``soft``. Written ``hard + (soft - stop_gradient(soft))`` — the form Zhou et al.
  (2019) use (``get_effective_mask`` in ``masked_networks.py`` of
  uber-research/deconstructing-lottery-tickets). It has the value and gradient of the
  textbook ``soft + stop_gradient(hard - soft)``, but its forward value is exactly the
  0/1 mask, whereas ``soft + (hard - soft)`` can be off by one rounding step.
* ``bernoulli_mask(probs, seed_generator)``: one Bernoulli(p) draw per entry
  (``uniform < p``, as ``StraightThroughBinomialSample`` in allenai/hidden-networks
  ``utils/conv_type.py``). The randomness must come from a ``keras.random.SeedGenerator``
  owned by the caller: an int seed would give the same mask at every step, and
  ``seed=None`` breaks under JAX ``jit``.
* ``top_k_mask(values, k)``: ones at the ``n - int((1 - k) * n)`` largest entries of
  ``values`` (the count of ``GetSubnet`` in allenai/hidden-networks ``utils/conv_type.py``),
  zeros elsewhere.
"""

import keras
from keras import ops


def straight_through(hard, soft):
    """``hard`` in the forward pass, the gradient of ``soft`` in the backward pass."""
    return hard + (soft - ops.stop_gradient(soft))


def bernoulli_mask(probs, seed_generator):
    """A float 0/1 tensor with ``P(1) = probs``, drawn with ``seed_generator``."""
    uniform = keras.random.uniform(ops.shape(probs), dtype=probs.dtype, seed=seed_generator)
    return ops.cast(ops.less(uniform, probs), probs.dtype)


def keep_count(size, k):
    """Entries kept by ``top_k_mask`` out of ``size``: ``size - int((1 - k) * size)``."""
    return int(size) - int((1.0 - float(k)) * int(size))


def top_k_mask(values, k):
    """A float 0/1 tensor shaped like ``values`` (which must be >= 0) with ones at its
    ``keep_count(values.size, k)`` largest entries.

    The mask is ``values >= t`` with ``t`` the exact ``keep``-th largest value, so
    entries tied with ``t`` are all kept (scores are continuous: ties do not occur in
    practice). ``t`` is found without sorting (see ``kth_largest``).
    """
    shape = tuple(values.shape)
    size = 1
    for dim in shape:
        size *= int(dim)
    keep = keep_count(size, k)
    if keep >= size:
        return ops.ones_like(values)
    if keep <= 0:
        return ops.zeros_like(values)
    values = ops.stop_gradient(values)
    threshold = kth_largest(ops.reshape(values, (size,)), keep)
    return ops.cast(ops.greater_equal(values, threshold), values.dtype)


def kth_largest(flat, kth):
    """The ``kth`` largest entry of a 1-D float32 tensor of non-negative values, exactly.

    A full sort (``GetSubnet`` sorts every step) or ``top_k`` of half a layer costs
    ~0.1 s per step for ``fc1`` on XLA CPU, so on JAX and TensorFlow this is a 31-step
    binary search over the bits of the answer: non-negative float32 values order like
    their int32 bit patterns, and each step is one compare-and-count (5-15 ms in all
    for ``fc1``; written as a ``fori_loop``, which compiles 3-6x faster than unrolled).
    PyTorch runs ``top_k`` fast and elementwise loops slowly on a busy CPU, so there it
    takes the minimum of ``top_k``. Both give the same value.
    """
    if keras.backend.backend() == "torch":
        top, _ = ops.top_k(flat, kth, sorted=False)
        return ops.min(top)
    bits = ops.view(flat, "int32")
    one = ops.convert_to_tensor(1, "int32")

    def step(i, found):  # set bit 30 - i if enough entries are >= the candidate (bit 31, the sign, is 0)
        candidate = ops.bitwise_or(found, ops.left_shift(one, ops.cast(30 - i, "int32")))
        enough = ops.greater_equal(ops.sum(ops.cast(ops.greater_equal(bits, candidate), "int32")), kth)
        return ops.where(enough, candidate, found)

    found = ops.fori_loop(0, 31, step, ops.convert_to_tensor(0, "int32"))
    return ops.view(ops.reshape(found, (1,)), flat.dtype)[0]
