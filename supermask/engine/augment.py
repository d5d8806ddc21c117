"""Image augmentation inside the compiled step: random crop with zero padding and horizontal flip.

The random choices are drawn on the host, like the batch order: ``AugmentStream`` gives, for
every example of every step, a crop offset ``(dy, dx)`` in ``[0, 2 * pad]`` and a flip bit,
from ``np.random.default_rng([seed, 1])``, so a run is reproducible for its seed, differs
between seeds, resumes exactly (the stream is advanced like the batch stream) and makes the
same choices on every backend. ``augment`` applies them on the device, written once with
``keras.ops``: pad the batch with ``pad`` zeros on each side, then gather each example's
window (flipped left-right where asked). It is exact: a gather, no arithmetic on pixels.
This is open_lth's CIFAR-10 augmentation (``RandomHorizontalFlip``, ``RandomCrop(32, 4)``).
"""

import numpy as np
from keras import ops

PAD = 4  # pixels of zero padding around each image before the crop (open_lth's RandomCrop(32, 4))


class AugmentStream:
    """The crop offsets and flips of ``batch_size`` examples per step, drawn lazily."""

    def __init__(self, batch_size, seed, pad=PAD):
        self.batch_size, self.pad = int(batch_size), int(pad)
        self.rng = np.random.default_rng([int(seed), 1])

    def take(self, steps):
        """``(steps, batch_size, 3)`` int32: dy, dx in [0, 2 * pad] and flip in {0, 1}."""
        # One draw per (step, example, choice) in that order, so chunks of any size give one sequence.
        high = np.array([2 * self.pad + 1, 2 * self.pad + 1, 2])
        return self.rng.integers(0, high, size=(int(steps), self.batch_size, 3)).astype(np.int32)


def augment(x, params, pad=PAD):
    """Crop and flip a channels-last batch ``x`` (B, H, W, C) by ``params`` (B, 3) (see module docstring)."""
    batch, height, width, channels = x.shape
    padded = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    wide = width + 2 * pad
    params = ops.cast(params, "int32")
    dy, dx, flip = params[:, 0:1], params[:, 1:2], params[:, 2:3]
    rows = dy + ops.arange(height, dtype="int32")[None, :]  # (B, H)
    cols = ops.arange(width, dtype="int32")[None, :]
    cols = dx + ops.where(ops.equal(flip, 1), (width - 1) - cols, cols)  # (B, W)
    index = ops.reshape(rows[:, :, None] * wide + cols[:, None, :], (-1, height * width, 1))
    flat = ops.reshape(padded, (-1, (height + 2 * pad) * wide, channels))
    index = ops.broadcast_to(index, (ops.shape(flat)[0], height * width, channels))
    return ops.reshape(ops.take_along_axis(flat, index, axis=1), (-1, height, width, channels))
