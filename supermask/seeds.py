"""Seeds: the one check every seed passes, and the seeds of a model's random parts.

Every seed in supermask is explicit (a field of the settings, or derived here from one), as
jaxpruner's hidden default seeds taught us to want.
"""

import hashlib
import numbers

from supermask.errors import ConfigError

# Seeds are unsigned 32-bit integers: numpy's legacy seeding, TensorFlow and JAX keys
# all take them, so every backend accepts every valid seed.
MAX_SEED = 2**32 - 1


def check_seed(seed, name="seed"):
    """``seed`` as an int in [0, 2**32 - 1]; anything else raises ConfigError."""
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be an integer in [0, {MAX_SEED}] (2**32 - 1). Received: {name}={seed!r}")
    return int(seed)


def derive_seed(seed, index):
    """The seed of a model's ``index``-th random part (a kernel initialiser, a mask sampler).

    ``seed * 1000 + index`` while that is below 2**31 (every seed up to 2 147 482: the
    seeds all earlier results used), else a SHA-256 mix of both folded into [1, 2**31):
    every backend's seed generator takes it (PyTorch's needs int32), for any seed in
    [0, 2**32).
    """
    plain = int(seed) * 1000 + int(index)
    if plain < 2**31:
        return plain
    digest = hashlib.sha256(f"{int(seed)}:{int(index)}".encode()).digest()
    return 1 + int.from_bytes(digest[:8], "little") % (2**31 - 1)


class SeedSequence:
    """``derive_seed(seed, start), derive_seed(seed, start + 1), ...``: one fresh seed per call,
    for the initialisers of a model's layers in order."""

    def __init__(self, seed, start=0):
        self.seed, self.index = check_seed(seed), int(start)

    def __call__(self):
        value = derive_seed(self.seed, self.index)
        self.index += 1
        return value
