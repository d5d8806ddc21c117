"""The PyTorch program: a lean loop over a chunk's steps, data on the device; on a GPU each
step is one replayed CUDA graph.

PyTorch runs eagerly, so what the compiled engines gain from fusing a chunk, this one
gains by doing only the work a step needs: the training split and the evaluation
batches are placed on the device once, and a step is the batch gather, the forward
pass, the program's loss (plus layer losses), ``torch.autograd.grad`` and the optimiser
update, without ``fit``'s data adapter, callbacks and metric objects; the step sums stay
on the device until the chunk ends. For a ``keras.Sequential`` the forward pass calls
each layer's ``call`` in turn, skipping ``Layer.__call__``'s per-call bookkeeping (input
conversion, scopes), which is a fifth of a small step on a CPU and does nothing for
built float32 layers.

Two forms. ``fused`` (the default) runs two Keras layers faster in training: a
``BatchNormalization`` through PyTorch's fused ``batch_norm`` kernel (``fused_batch_norm``:
Keras's own ``call`` computes the moments with half a dozen elementwise operations, a third
of a ResNet-20 step on a 2-core CPU; same results up to float rounding) and a channels-last
``MaxPooling2D`` on a view instead of a copy (``copy_free_max_pool``, exact). ``keras`` calls
every layer as Keras does, and so gives Keras ``fit``'s results bit for bit. (The masked
convolutions avoid Keras's two layout copies in both forms, ``supermask.backend.conv``.)

The default loss (``SparseCategoricalCrossentropy(from_logits=True)``)
is ``torch.nn.functional.cross_entropy``, the op Keras's torch backend calls, without
``Loss.__call__``'s per-call conversions; any other loss is called as Keras calls it.

The update: for a plain Keras ``Adam`` (no clipping, weight decay, EMA, gradient
accumulation, loss scaling, schedule, constraints or AMSGrad: the lottery papers'
optimiser) ``adam_update`` runs the very tensor operations of Keras's torch ``Adam``
on the optimiser's own variables, bit for bit, without ``apply``'s per-call Python
bookkeeping and with its constants made device tensors once, so that nothing turns a
Python number into a device tensor inside a step. It reads Adam's slot variables from
Keras internals, so it runs only on the Keras releases it was compared with
(``ADAM_CHECKED_KERAS``). Any other optimiser, or Keras release, goes through ``apply``.

On a CUDA device, with that update and loss, no layer losses and no random layers
(supermask layers draw from a ``SeedGenerator``, whose torch form reads its seed back to
the host every step), the first steps of a model's first chunk run eagerly on a side
stream (the warm-up CUDA graphs need) and the step is then captured once as a CUDA graph
(batch gather to update, step sums included) and replayed for every later step: one
launch per step instead of dozens. ``SUPERMASK_CUDA_GRAPHS=0`` turns that off. Evaluation runs
eagerly under ``torch.no_grad`` on batches of ``EVAL_BATCH_SIZE``. K models run one
after the other.
"""

import contextlib
import functools
import inspect
import logging
import os
import re
import warnings

import keras
import numpy as np
import torch

from supermask.engine import program
from supermask.engine.augment import augment as augment_batch

WARMUP_STEPS = 3  # eager steps on a side stream before a CUDA graph is captured
ADAM_CHECKED_KERAS = ((3, 15),)  # (major, minor) Keras releases whose torch Adam ``adam_update`` matches


def cuda_graphs_enabled():
    """Whether a CUDA device may capture steps as graphs (``SUPERMASK_CUDA_GRAPHS``, default on)."""
    return os.environ.get("SUPERMASK_CUDA_GRAPHS", "1") != "0"


def native_cross_entropy(loss):
    """Whether ``loss`` is ``SparseCategoricalCrossentropy(from_logits=True)`` with Keras's other
    defaults, the loss ``torch.nn.functional.cross_entropy`` computes."""
    default = program.default_loss()
    return loss.dtype == default.dtype and program.loss_signature(loss) == program.loss_signature(default)


@functools.lru_cache(maxsize=None)
def adam_checked(version):
    """Whether ``adam_update`` was compared with the torch ``Adam`` of Keras ``version`` (a
    ``keras.__version__`` string): its major and minor release are in ``ADAM_CHECKED_KERAS``.
    Where not, says so once, in a debug log."""
    match = re.match(r"(\d+)\.(\d+)", version)
    checked = bool(match) and (int(match[1]), int(match[2])) in ADAM_CHECKED_KERAS
    if not checked:
        logging.getLogger(__name__).debug("Keras %s: not a release adam_update was compared with; Adam steps "
                                          "run through optimizer.apply.", version)
    return checked


def adam_update(optimizer, variables):
    """``fn(grads)``: one step of Keras's torch ``Adam`` on ``variables``, or None.

    Follows ``keras/src/backend/torch/optimizers/torch_adam.py`` operation for operation
    (same dtypes, same order, so the result is identical), then increments
    ``optimizer.iterations`` as ``apply`` does. None unless ``optimizer`` is a plain Adam
    (see the module docstring) and the running Keras is one ``adam_checked`` names: then
    the caller uses ``optimizer.apply``.
    """
    if not adam_checked(keras.__version__):
        return None
    keras_adam = isinstance(optimizer, keras.optimizers.Adam) and type(optimizer).__module__.startswith("keras.")
    plain = (keras_adam and not optimizer.amsgrad
             and optimizer.clipnorm is None and optimizer.clipvalue is None and optimizer.global_clipnorm is None
             and optimizer.weight_decay is None and not optimizer.use_ema
             and optimizer.gradient_accumulation_steps is None and optimizer.loss_scale_factor is None
             and isinstance(optimizer.learning_rate, keras.Variable)
             and all(v.constraint is None and not v.overwrite_with_gradient for v in variables))
    if not plain:
        return None
    params = [v.value for v in variables]
    dtype = params[0].dtype
    if any(p.dtype != dtype for p in params):
        return None
    index = optimizer._get_variable_index  # the optimiser's own slot variables, as Keras looks them up
    m_list = [optimizer._momentums[index(v)].value for v in variables]
    v_list = [optimizer._velocities[index(v)].value for v in variables]
    learning_rate, iterations = optimizer.learning_rate.value, optimizer.iterations.value
    beta_1, beta_2, epsilon = optimizer.beta_1, optimizer.beta_2, optimizer.epsilon
    beta_1_t = torch.tensor(beta_1, dtype=dtype, device=params[0].device)
    beta_2_t = torch.tensor(beta_2, dtype=dtype, device=params[0].device)

    @torch.no_grad()
    def update(grads):
        lr = learning_rate.to(dtype)
        local_step = (iterations + 1).to(dtype)
        alpha = lr * torch.sqrt(1 - torch.pow(beta_2_t, local_step)) / (1 - torch.pow(beta_1_t, local_step))
        torch._foreach_mul_(m_list, beta_1)
        torch._foreach_add_(m_list, grads, alpha=1 - beta_1)
        torch._foreach_mul_(v_list, beta_2)
        torch._foreach_add_(v_list, torch._foreach_mul(grads, grads), alpha=1 - beta_2)
        torch._foreach_add_(params, torch._foreach_div(torch._foreach_mul(m_list, alpha),
                                                       torch._foreach_add(torch._foreach_sqrt(v_list), epsilon)),
                            alpha=-1)
        iterations.add_(1)

    return update


def fused_batch_norm(layer):
    """``call(inputs, training=None, mask=None)`` for a Keras ``BatchNormalization`` layer that, in
    training, normalises with PyTorch's fused ``batch_norm`` kernel; None for any other layer.

    Keras's own ``call`` computes the batch moments as ``E[x^2] - E[x]^2`` and normalises with
    four more elementwise operations, each with its own autograd node: on a 2-core CPU that is
    a third of a ResNet-20 step, against a sixth for the fused kernel. This call gives the same
    outputs and moving statistics (``momentum * moving + (1 - momentum) * batch``, the biased
    batch variance) up to float rounding: the fused kernel averages in another order. Anything
    it does not cover (inference, a mask, renormalisation, a synchronised or frozen layer, a
    dtype other than float32, one value per channel, a subclass with its own ``call``) goes to
    Keras's ``call``. The torch engine's default form ``fused`` uses it; form ``keras`` keeps
    Keras's ``call`` (and with it ``fit``'s results bit for bit).
    """
    base = keras.layers.BatchNormalization
    if not isinstance(layer, base) or type(layer).call is not base.call or layer.renorm or layer.synchronized:
        return None
    keras_call = layer.call

    def call(inputs, training=None, mask=None):
        if (not (training and layer.trainable) or mask is not None or inputs.dtype != torch.float32
                or inputs.numel() < 2 * inputs.shape[layer.axis]):  # one value per channel: Keras's variance 0
            return keras_call(inputs, training=training, mask=mask)
        axis = layer.axis % inputs.ndim
        gamma = layer.gamma.value if layer.scale else None
        beta = layer.beta.value if layer.center else None
        # The kernel's own batch statistics: with momentum 1 its "running" buffers become the batch
        # mean and the unbiased variance, which Keras's biased variance is (n - 1) / n of.
        mean = torch.zeros_like(layer.moving_mean.value)
        variance = torch.zeros_like(layer.moving_variance.value)
        outputs = torch.nn.functional.batch_norm(inputs.movedim(axis, 1), mean, variance, gamma, beta, training=True,
                                                 momentum=1.0, eps=layer.epsilon)
        with torch.no_grad():
            count = inputs.numel() // inputs.shape[axis]
            variance = variance * ((count - 1) / count)
            momentum = layer.momentum
            layer.moving_mean.assign(layer.moving_mean.value * momentum + mean * (1.0 - momentum))
            layer.moving_variance.assign(layer.moving_variance.value * momentum + variance * (1.0 - momentum))
        return outputs.movedim(1, axis)

    return call


def copy_free_max_pool(layer):
    """``call(inputs)`` for a Keras ``MaxPooling2D`` layer (channels-last, "valid" padding) that
    pools a channels-first *view* of the input, or None for any other layer. Keras's torch
    ``max_pool`` copies the input into channels-first memory first (and its gradient back);
    the maximum of the same window is the same number, so this is Keras's result exactly."""
    base = keras.layers.MaxPooling2D
    if (not isinstance(layer, base) or type(layer).call is not base.call or layer.padding != "valid"
            or layer.data_format != "channels_last"):
        return None
    pool_size, strides = tuple(layer.pool_size), tuple(layer.strides)

    def call(inputs):
        pooled = torch.nn.functional.max_pool2d(inputs.permute(0, 3, 1, 2), kernel_size=pool_size, stride=strides)
        return pooled.permute(0, 2, 3, 1)

    return call


FAST_CALLS = (fused_batch_norm, copy_free_max_pool)  # the replacements of form "fused"


def fast_calls(model):
    """``[(layer, call)]``: each layer of ``model`` (nested ones too) that a ``FAST_CALLS`` entry
    covers, with its faster call."""
    out = []
    for layer in _all_layers(model):
        call = next((c for c in (make(layer) for make in FAST_CALLS) if c is not None), None)
        if call is not None:
            out.append((layer, call))
    return out


def _all_layers(model):
    """Every layer inside ``model``, nested models' layers included."""
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _all_layers(layer)


@contextlib.contextmanager
def _calls(replacements):
    """``layer.call`` replaced by ``call`` for each ``(layer, call)`` while the block runs (an
    instance attribute shadows the class's method; removed again, even on an error)."""
    for layer, call in replacements:
        layer.call = call
    try:
        yield
    finally:
        for layer, _ in replacements:
            del layer.call


class _Single:
    """The training loop and evaluation of one model."""

    def __init__(self, model, x_train, y_train, splits, loss, weight_decay, augment, form="fused"):
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self.model, self.x_train, self.y_train, self.splits = model, x_train, y_train, splits
        self.variables = model.trainable_variables
        self.params = [v.value for v in self.variables]  # the torch tensors behind the Keras variables
        self.fused = fast_calls(model) if form == "fused" else []
        self.forward = _forward(model, self.fused)
        self.has_losses = bool(model.losses)  # regularisers: their losses are recomputed every step
        self.loss, self.native_loss = loss, native_cross_entropy(loss)
        self.weight_decay, self.augment = weight_decay, augment
        fast = adam_update(model.optimizer, self.variables)
        self.update = fast or (lambda grads: model.optimizer.apply(grads, self.variables))
        self.sums = torch.zeros(2, dtype=torch.float64, device=x_train.device)  # loss, correct predictions
        random_layers = any("seed_generator" in v.path for v in model.non_trainable_variables)
        self.graphable = (x_train.device.type == "cuda" and cuda_graphs_enabled() and fast is not None
                          and self.native_loss and not self.has_losses and not random_layers)
        self.graph = self.graph_indices = None

    def _loss(self, logits, y):
        loss = torch.nn.functional.cross_entropy(logits, y) if self.native_loss else self.loss(y, logits)
        if self.has_losses:
            loss = loss + sum(self.model.losses)
        if self.weight_decay:
            loss = loss + 0.5 * self.weight_decay * sum(torch.sum(p * p) for p in self.params)
        return loss

    def _step(self, idx):
        """One training step on the batch ``idx`` ((batch,) int64 on the device, or (batch, 4) with
        the augmentation choices), sums updated."""
        if self.augment:
            idx, choices = idx[:, 0], idx[:, 1:]
            x = augment_batch(self.x_train[idx], choices)
        else:
            x = self.x_train[idx]
        y = self.y_train[idx]
        logits = self.forward(x, True)
        loss = self._loss(logits, y)
        grads = torch.autograd.grad(loss, self.params)
        with torch.no_grad():
            self.update(list(grads))
            self.sums[0] += loss.detach()
            self.sums[1] += (logits.argmax(dim=-1) == y).sum()

    def _warm_up(self, indices):
        """Run the first steps of ``indices`` eagerly on a side stream, as CUDA graphs need
        before a capture; returns how many were run."""
        warmup = min(WARMUP_STEPS, len(indices))
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for idx in indices[:warmup]:
                self._step(idx)
        torch.cuda.current_stream().wait_stream(stream)
        return warmup

    def _capture(self, idx):
        """Capture one step on the batch buffer ``graph_indices`` (first holding ``idx``) as a
        CUDA graph. Capture records the kernels without running them: the state is unchanged.
        A step that cannot be captured leaves this model on the eager loop, with a warning."""
        self.graph_indices = idx.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._step(self.graph_indices)
        except RuntimeError as exc:
            warnings.warn(f"A training step could not be captured as a CUDA graph, so it runs eagerly: {exc}",
                          RuntimeWarning, stacklevel=3)
            self.graphable = False
            return
        self.graph = graph

    def chunk(self, indices):
        self.sums.zero_()
        start = 0
        if self.graphable and self.graph is None:
            start = self._warm_up(indices)
            if start < len(indices):  # else too short a chunk to capture: the next one will
                self._capture(indices[start])
        if self.graph is not None:
            for idx in indices[start:]:
                self.graph_indices.copy_(idx)
                self.graph.replay()
        else:
            for idx in indices[start:]:
                self._step(idx)
        loss_sum, correct = self.sums.tolist()
        # Accuracy summed over steps as the other engines do: the mean of per-step means.
        return np.array([loss_sum, correct / indices.shape[1]])

    @torch.no_grad()
    def evaluate(self, x, y, w):
        sums = torch.zeros(2, dtype=torch.float64, device=x.device)
        for xb, yb, wb in zip(x, y, w):
            logits = self.forward(xb, False)
            if self.native_loss:
                nll = torch.nn.functional.cross_entropy(logits, yb, reduction="none")
            else:
                nll = program.per_example_loss(self.loss, yb, logits)
            if self.has_losses:  # Keras's reported loss adds the layer losses to every batch
                nll = nll + sum(self.model.losses)
            sums[0] += (nll * wb).sum()
            sums[1] += ((logits.argmax(dim=-1) == yb).float() * wb).sum()
        return (sums / w.sum()).cpu().numpy()


def _forward(model, replacements=()):
    """``fn(x, training) -> logits``: the layers' ``call`` in turn for a built Sequential model,
    else the model itself; with each ``(layer, call)`` of ``replacements`` calling ``call`` instead
    of the layer's own (for the duration of the forward pass)."""
    replacements = list(replacements)
    if not isinstance(model, keras.Sequential) or not model.built:
        def forward(x, training):
            with _calls(replacements):
                return model(x, training=training)

        return forward
    replaced = {id(layer): call for layer, call in replacements}
    calls = [replaced.get(id(layer), layer.call) for layer in model.layers]
    steps = [(call, "training" in inspect.signature(call).parameters) for call in calls]
    nested = [(layer, call) for layer, call in replacements if not any(layer is top for top in model.layers)]

    def forward(x, training):
        with _calls(nested):
            for call, takes_training in steps:
                x = call(x, training=training) if takes_training else call(x)
        return x

    return forward


class Program(program.Program):
    """Train and evaluate ``models`` with lean PyTorch loops, one model at a time."""

    FORMS = ("fused", "keras")  # faster calls for BatchNormalization and max pooling (FAST_CALLS), or Keras's own

    def default_form(self):
        return "fused"

    def __init__(self, models, data, batch_size, *, loss, weight_decay=0.0, augment=False, form=None):
        super().__init__(models, data, batch_size, loss=loss, weight_decay=weight_decay, augment=augment,
                         form=form)
        program.check_same_program(self.models)
        device = self.models[0].trainable_variables[0].value.device  # where Keras placed the model
        x_train = torch.as_tensor(data.x_train, device=device)
        y_train = torch.as_tensor(data.y_train, device=device).long()
        splits = {k: (torch.as_tensor(x, device=device), torch.as_tensor(y, device=device).long(),
                      torch.as_tensor(w, device=device)) for k, (x, y, w) in program.eval_splits(data).items()}
        self.singles = [_Single(m, x_train, y_train, splits, loss, self.weight_decay, self.augment, self.form)
                        for m in self.models]
        self.device = device

    def train_chunk(self, indices):
        indices = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=self.device)
        return np.stack([s.chunk(idx) for s, idx in zip(self.singles, indices)])

    def evaluate(self):
        return {split: np.stack([s.evaluate(*s.splits[split]) for s in self.singles])
                for split in self.singles[0].splits}
