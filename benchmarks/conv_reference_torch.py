"""The hand-written PyTorch reference of ``benchmarks/conv_speed.py``: conv2 and ResNet-20 as plain
``torch.nn.functional`` code (channels-first, masked kernels, ``F.batch_norm``), trained by a plain
loop with ``torch.optim`` (Adam, or SGD with momentum and coupled weight decay), data on the device.
"""

import numpy as np
import torch
import torch.nn.functional as F


def _conv(cin, cout, k, rng):
    return torch.tensor(rng.normal(0, (2 / (cin * k * k)) ** 0.5, (cout, cin, k, k)), dtype=torch.float32)


def _mask(shape, rng):
    return torch.tensor(rng.random(shape) < 0.2, dtype=torch.float32)


def conv2(channels, rng):
    """conv 64 - conv 64 - max pool - dense 256 - dense 256 - dense 10, as ``zoo.paper_model("conv2")``."""
    p = {"c1": _conv(channels, 64, 3, rng), "c2": _conv(64, 64, 3, rng), "b1": torch.zeros(64), "b2": torch.zeros(64)}
    widths = [(16 * 16 * 64, 256), (256, 256), (256, 10)]
    for i, (a, b) in enumerate(widths):
        p[f"d{i}"] = torch.tensor(rng.normal(0, (1 / a) ** 0.5, (b, a)), dtype=torch.float32)
        p[f"e{i}"] = torch.zeros(b)
    masks = {k: _mask(v.shape, rng) for k, v in p.items() if k[0] in "cd"}

    def forward(p, x, state, training):
        x = F.relu(F.conv2d(x, p["c1"] * masks["c1"], p["b1"], padding=1))
        x = F.max_pool2d(F.relu(F.conv2d(x, p["c2"] * masks["c2"], p["b2"], padding=1)), 2)
        x = x.flatten(1)
        for i in range(3):
            x = F.linear(x, p[f"d{i}"] * masks[f"d{i}"], p[f"e{i}"])
            x = F.relu(x) if i < 2 else x
        return x

    return p, {}, forward


def resnet20(channels, rng, width=16):
    """open_lth's cifar_resnet_20, as ``zoo.resnet20``."""
    p, state, plan = {}, {}, []

    def conv_bn(name, cin, cout, k):
        p[name] = _conv(cin, cout, k, rng)
        p[name + "_g"], p[name + "_b"] = torch.ones(cout), torch.zeros(cout)
        state[name + "_m"], state[name + "_v"] = torch.zeros(cout), torch.ones(cout)

    conv_bn("stem", channels, width, 3)
    cin = width
    for stage, filters in enumerate((width, 2 * width, 4 * width), start=1):
        for block in range(1, 4):
            name, down = f"s{stage}b{block}", stage > 1 and block == 1
            conv_bn(name + "c1", cin, filters, 3)
            conv_bn(name + "c2", filters, filters, 3)
            if down or cin != filters:
                conv_bn(name + "sc", cin, filters, 1)
            plan.append((name, 2 if down else 1, down or cin != filters))
            cin = filters
    p["out"] = torch.tensor(rng.normal(0, (1 / cin) ** 0.5, (10, cin)), dtype=torch.float32)
    p["out_b"] = torch.zeros(10)
    masks = {k: _mask(v.shape, rng) for k, v in p.items() if v.ndim == 4 or k == "out"}

    def cbn(p, state, name, x, stride, training):
        k = p[name].shape[-1]
        x = F.conv2d(x, p[name] * masks[name], stride=stride, padding=k // 2)
        return F.batch_norm(x, state[name + "_m"], state[name + "_v"], p[name + "_g"], p[name + "_b"],
                            training=training, momentum=0.01, eps=1e-3)

    def forward(p, x, state, training):
        x = F.relu(cbn(p, state, "stem", x, 1, training))
        for name, stride, shortcut in plan:
            y = F.relu(cbn(p, state, name + "c1", x, stride, training))
            y = cbn(p, state, name + "c2", y, 1, training)
            x = F.relu(y + (cbn(p, state, name + "sc", x, stride, training) if shortcut else x))
        return F.linear(x.mean((2, 3)), p["out"] * masks["out"], p["out_b"])

    return p, state, forward


def train_steps(model_name, data, recipe, chunk):
    """``run()``: the plain loop over the (steps, batch[, 4]) ``chunk``, trained from where the last run ended."""
    from supermask.engine.augment import augment

    rng = np.random.default_rng(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    params, state, forward = (conv2 if model_name == "conv2" else resnet20)(data.x_train.shape[-1], rng)
    params = {k: torch.nn.Parameter(v.to(device)) for k, v in params.items()}
    state = {k: v.to(device) for k, v in state.items()}
    if recipe["optimizer"] == "adam":
        optimizer = torch.optim.Adam(params.values(), lr=recipe["lr"], eps=1e-7)
    else:
        optimizer = torch.optim.SGD(params.values(), lr=recipe["lr"], momentum=recipe["momentum"],
                                    weight_decay=recipe["weight_decay"])
    x_train = torch.as_tensor(data.x_train, device=device)  # (N, H, W, C): augmented as the engine does
    y_train = torch.as_tensor(data.y_train, device=device).long()
    chunk = torch.as_tensor(chunk, device=device).long()

    def run():
        for idx in chunk:
            if recipe["augment"]:
                x = augment(x_train[idx[:, 0]], idx[:, 1:])
                y = y_train[idx[:, 0]]
            else:
                x, y = x_train[idx], y_train[idx]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(forward(params, x.permute(0, 3, 1, 2), state, True), y)
            loss.backward()
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return run
