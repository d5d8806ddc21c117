"""Supermask layers: frozen random weights, a learned mask (Zhou et al. 2019; Ramanujan et al. 2020).

A supermask layer owns a frozen ``kernel`` (non-trainable), a frozen ``bias``
(non-trainable, or none) and a trainable ``scores`` variable shaped like the kernel.
Only the scores learn; the layer computes with ``kernel * mask(scores)``. Two learners:

``bernoulli`` (Zhou et al., ``masked_networks.py`` of uber-research/deconstructing-lottery-tickets)
    ``p = sigmoid(scores)``. While training, the mask is a fresh Bernoulli(p) draw at
    every step, from the layer's own ``keras.random.SeedGenerator``, with a
    straight-through gradient to ``p`` (``supermask.layers.ste``). Scores start at the
    constant ``0`` (the reference's ``--sigmoid_bias``), i.e. p = 0.5.
    At inference, ``inference_mode`` selects:

    * ``"deterministic"`` (default): the mask ``p > 0.5``, computed as ``scores > 0``
      (the same set, without float rounding of the sigmoid near 0.5). Repeated calls
      give the same output. Note that at initialisation (all scores 0) it is empty.
    * ``"sampled"``: a fresh Bernoulli(p) draw at every call, as the reference
      evaluates (its ``get_effective_mask`` samples at test time too, and its final
      number is the mean test accuracy of 10 draws over the whole test set;
      ``supermask.train_supermask`` reproduces that protocol).

``edge-popup`` (Ramanujan et al. 2020, ``GetSubnet`` / ``SubnetConv`` in allenai/hidden-networks ``utils/conv_type.py``)
    The mask keeps the ``k`` fraction of entries with the largest ``|scores|`` in the
    layer (``n - int((1 - k) n)`` entries), in training and at inference alike, with a
    straight-through gradient to ``|scores|``. Scores start Kaiming-uniform with
    ``a = sqrt(5)``, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (the reference's
    ``kaiming_uniform_(scores, a=math.sqrt(5))``). ``inference_mode`` must be
    ``"deterministic"``.

Weights (``kernel_initializer``, Glorot normal by default as in Zhou et al.'s
``glorot_normal`` networks). ``signed_constant=True`` replaces each drawn weight by
``sign(w) * std(kernel)``, the standard deviation of the layer's drawn kernel (the
reference's ``make_signed_consts``: ``tf.nn.moments`` over the whole kernel; for Glorot
normal this is ~ sqrt(2 / (fan_in + fan_out))). The stored kernel holds these ±σ
values, so ``kernel`` is exactly what the layer multiplies.

Biases: Zhou et al. keep the ``Dense``/``Conv2D`` bias (zero-initialised) but move it
to the non-trainable weights, unmasked, so it stays 0; Ramanujan et al. build their
layers with ``bias=False``. Here ``use_bias=True`` (default) gives a frozen,
unmasked, zero-initialised ``bias`` as in Zhou et al.; ``use_bias=False`` gives none.

Dynamic Weight Rescaling (``dynamic_scaling=True``; the reference's
``--dynamic_scaling``): the masked kernel is multiplied by ``size / kept``, the ratio
of total to kept weights of the current mask (its gradient flows into the scores
through ``kept``, as in the reference). At inference it uses the inference mask.

``inference_kernel()`` / ``inference_mask()`` give the *deterministic* inference
mask (``scores > 0``, or the top-k) and the kernel it yields, DWR scale included,
whatever ``inference_mode`` is: that is what an exporter folds in. A model in
``"sampled"`` mode therefore differs from its export by the sampling noise.
"""

import random

import keras
import numpy as np
from keras import ops

from supermask.errors import ConfigError
from supermask.layers.masked import Conv1DOp, Conv2DOp, DenseOp, KernelLayer
from supermask.layers.ste import bernoulli_mask, keep_count, straight_through, top_k_mask
from supermask.settings.supermask import check_inference_mode, check_k, normalize_learner



def default_score_initializer(learner, seed):
    """Zhou et al.: constant 0 (p = 0.5). Ramanujan et al.: Kaiming uniform, a = sqrt(5)."""
    if learner == "bernoulli":
        return keras.initializers.Constant(0.0)
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed)


def signed_constant_initializer(initializer):
    """Wrap ``initializer``: draw, then replace each weight by ``sign(w) * std(w)``."""

    def init(shape, dtype=None):
        weights = initializer(shape, dtype=dtype)
        return ops.sign(weights) * ops.std(weights)

    return init


class SupermaskLayer(KernelLayer):
    """Base class of ``SupermaskDense`` / ``SupermaskConv2D`` (see the module docstring).

    Args:
        learner: ``"bernoulli"`` (Zhou et al.) or ``"edge-popup"`` (Ramanujan et al.).
        k: edge-popup: fraction of the layer's weights kept, in (0, 1].
        signed_constant: replace the drawn weights by ``±std`` of the layer's kernel.
        dynamic_scaling: Dynamic Weight Rescaling, ``kernel * mask * size / kept``.
        inference_mode: ``"deterministic"`` or (bernoulli only) ``"sampled"``.
        score_initializer: default per learner (see ``default_score_initializer``).
        score_regularizer: a Keras regularizer on the scores (e.g. ``L2(wd / 2)`` is
            PyTorch's SGD ``weight_decay=wd``, as Ramanujan et al. train with).
        seed: int fixing the mask samples (and the default edge-popup score init);
            ``None`` draws one from Python's ``random`` (seeded by
            ``keras.utils.set_random_seed``). The config stores the int.
        activation, use_bias, kernel_initializer, bias_initializer: as ``keras.layers.Dense``;
            the kernel and bias are frozen.
    """

    def __init__(
        self,
        learner="bernoulli",
        k=0.5,
        signed_constant=False,
        dynamic_scaling=False,
        inference_mode="deterministic",
        score_initializer=None,
        score_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.learner = normalize_learner(learner)
        self.k = check_k(k)
        self.signed_constant = bool(signed_constant)
        self.dynamic_scaling = bool(dynamic_scaling)
        self.inference_mode = check_inference_mode(inference_mode, self.learner)
        if seed is None:
            seed = random.randint(1, 2**31 - 1)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"seed must be an int or None. Received: seed={seed!r}")
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        if score_initializer is None:
            score_initializer = default_score_initializer(self.learner, self.seed)
        self.score_initializer = keras.initializers.get(score_initializer)
        self.score_regularizer = keras.regularizers.get(score_regularizer)

    # --- Keras layer API ------------------------------------------------------
    def build(self, input_shape):
        shape = self.kernel_shape(input_shape)
        initializer = self.kernel_initializer
        if self.signed_constant:
            initializer = signed_constant_initializer(initializer)
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer=initializer, trainable=False)
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.output_channels(),), initializer=self.bias_initializer,
                trainable=False,
            )
        else:
            self.bias = None
        self.scores = self.add_weight(
            name="scores", shape=shape, initializer=self.score_initializer,
            regularizer=self.score_regularizer, trainable=True,
        )

    def current_mask(self, training=False):
        """The float 0/1 mask of this call: sampled or top-k, straight-through when ``training``."""
        if self.learner == "edge-popup":
            magnitude = ops.abs(self.scores)
            hard = top_k_mask(magnitude, self.k)
            return straight_through(hard, magnitude) if training else hard
        if training or self.inference_mode == "sampled":
            probs = ops.sigmoid(self.scores)
            hard = bernoulli_mask(probs, self.seed_generator)
            return straight_through(hard, probs) if training else hard
        return self._deterministic_mask()

    def _deterministic_mask(self):
        if self.learner == "edge-popup":
            return top_k_mask(ops.abs(self.scores), self.k)
        return ops.cast(ops.greater(self.scores, 0.0), self.scores.dtype)

    def _masked_kernel(self, mask):
        kernel = ops.stop_gradient(self.kernel) * mask
        if self.dynamic_scaling:
            size = float(np.prod(self.kernel.shape))
            kernel = kernel * (size / ops.maximum(ops.sum(mask), 1.0))
        return kernel

    def call(self, inputs, training=None):
        outputs = self.linear_op(inputs, self._masked_kernel(self.current_mask(bool(training))))
        if self.bias is not None:
            outputs = self.add_bias(outputs, ops.stop_gradient(self.bias))
        return self.activation(outputs)

    def get_config(self):
        config = {
            "learner": self.learner,
            "k": self.k,
            "signed_constant": self.signed_constant,
            "dynamic_scaling": self.dynamic_scaling,
            "inference_mode": self.inference_mode,
            "score_initializer": keras.initializers.serialize(self.score_initializer),
            "score_regularizer": keras.regularizers.serialize(self.score_regularizer),
            "seed": self.seed,
        }
        return {**super().get_config(), **config}

    # --- numpy helpers --------------------------------------------------------
    def inference_mask(self):
        """The deterministic inference mask (``scores > 0``, or the top-k) as a numpy bool array."""
        return np.asarray(ops.convert_to_numpy(self._deterministic_mask())) > 0.5

    def get_mask(self):
        """Same as ``inference_mask`` (the name ``supermask.masks`` uses for every layer)."""
        return self.inference_mask()

    def inference_kernel(self):
        """``kernel * inference_mask`` (times the DWR scale) as a float32 numpy array."""
        kernel = self._masked_kernel(self._deterministic_mask())
        return np.asarray(ops.convert_to_numpy(kernel), dtype=np.float32)

    def expected_density(self):
        """Expected fraction of kept weights: mean of ``sigmoid(scores)`` (the reference's
        "[Est] percent of 1s"), or the top-k fraction for edge-popup."""
        size = int(np.prod(self.kernel.shape))
        if self.learner == "edge-popup":
            return keep_count(size, self.k) / size
        return float(np.mean(ops.convert_to_numpy(ops.sigmoid(self.scores))))


class SupermaskDense(DenseOp, SupermaskLayer):
    """Dense supermask layer ``activation(inputs @ (kernel * mask) + bias)``, kernel frozen.

    Args:
        units: positive int, output size.
        Other arguments: see ``SupermaskLayer``.
    """


class SupermaskConv2D(Conv2DOp, SupermaskLayer):
    """2-D supermask convolution, frozen kernel of shape (kh, kw, cin // groups, filters).

    Args:
        filters, kernel_size, strides, padding, data_format, dilation_rate, groups: as ``MaskedConv2D``.
        Other arguments: see ``SupermaskLayer``.
    """


class SupermaskConv1D(Conv1DOp, SupermaskLayer):
    """1-D supermask convolution, frozen kernel of shape (kw, cin // groups, filters).

    Args as ``SupermaskConv2D`` (ints instead of pairs); ``padding`` may also be "causal".
    """
