"""The PyTorch program: a lean eager loop over a chunk's steps, data on the device.

PyTorch runs eagerly, so what the compiled engines gain from fusing a chunk, this one
gains by doing only the work a step needs: the training split and the evaluation
batches are placed on the device once, and a step is the batch gather, the forward
pass, the cross-entropy (plus layer losses), ``torch.autograd.grad`` and the Keras
optimiser's ``apply``, without ``fit``'s data adapter, callbacks and metric objects;
the step sums stay on the device until the chunk ends. For a ``keras.Sequential`` the
forward pass calls each layer's ``call`` in turn, skipping ``Layer.__call__``'s
per-call bookkeeping (input conversion, scopes), which is a fifth of a small step on a
CPU and does nothing for built float32 layers. Evaluation runs under ``torch.no_grad``
on batches of 1000. K models run one after the other.
"""

import inspect

import keras
import numpy as np
import torch

from supermask.engine.driver import check_same_program, eval_splits


class _Single:
    def __init__(self, model, x_train, y_train, splits):
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self.model, self.x_train, self.y_train, self.splits = model, x_train, y_train, splits
        self.variables = model.trainable_variables
        self.params = [v.value for v in self.variables]  # the torch tensors behind the Keras variables
        self.forward = _forward(model)
        self.has_losses = bool(model.losses)  # regularisers: their losses are recomputed every step

    def _loss(self, logits, y):
        loss = torch.nn.functional.cross_entropy(logits, y)
        return loss + sum(self.model.losses) if self.has_losses else loss

    def chunk(self, indices):
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.x_train.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.x_train.device)
        for idx in indices:
            x, y = self.x_train[idx], self.y_train[idx]
            logits = self.forward(x, True)
            loss = self._loss(logits, y)
            grads = torch.autograd.grad(loss, self.params)
            with torch.no_grad():
                self.model.optimizer.apply(list(grads), self.variables)
                loss_sum += loss.detach()
                correct += (logits.argmax(dim=-1) == y).sum()
        # Accuracy summed over steps as the other engines do: the mean of per-step means.
        return np.array([float(loss_sum), float(correct) / indices.shape[1]])

    @torch.no_grad()
    def evaluate(self, x, y, w):
        sums = torch.zeros(2, dtype=torch.float64, device=x.device)
        for xb, yb, wb in zip(x, y, w):
            logits = self.forward(xb, False)
            nll = torch.nn.functional.cross_entropy(logits, yb, reduction="none")
            if self.has_losses:  # Keras's reported loss adds the layer losses to every batch
                nll = nll + sum(self.model.losses)
            sums[0] += (nll * wb).sum()
            sums[1] += ((logits.argmax(dim=-1) == yb).float() * wb).sum()
        return (sums / w.sum()).cpu().numpy()


def _forward(model):
    """``fn(x, training) -> logits``: the layers' ``call`` in turn for a built Sequential model,
    else the model itself."""
    if not isinstance(model, keras.Sequential) or not model.built:
        return lambda x, training: model(x, training=training)
    steps = [(layer.call, "training" in inspect.signature(layer.call).parameters) for layer in model.layers]

    def forward(x, training):
        for call, takes_training in steps:
            x = call(x, training=training) if takes_training else call(x)
        return x

    return forward


class Program:
    """Train and evaluate ``models`` with lean PyTorch loops, one model at a time."""

    def __init__(self, models, data, batch_size):
        check_same_program(models)
        device = models[0].trainable_variables[0].value.device  # where Keras placed the model
        x_train = torch.as_tensor(data.x_train, device=device)
        y_train = torch.as_tensor(data.y_train, device=device).long()
        splits = {k: (torch.as_tensor(x, device=device), torch.as_tensor(y, device=device).long(),
                      torch.as_tensor(w, device=device)) for k, (x, y, w) in eval_splits(data).items()}
        self.singles = [_Single(m, x_train, y_train, splits) for m in models]
        self.device = device

    def train_chunk(self, indices):
        """Run ``indices`` ((K, steps, batch) int32) through the K models; (K, 2) loss/accuracy sums."""
        indices = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=self.device)
        return np.stack([s.chunk(idx) for s, idx in zip(self.singles, indices)])

    def evaluate(self):
        """``{split: (K, 2) array of mean loss and accuracy}`` for the non-empty splits."""
        return {split: np.stack([s.evaluate(*s.splits[split]) for s in self.singles])
                for split in self.singles[0].splits}

    def sync(self):
        """Nothing to do: the models' variables are the state."""
