"""Settings of the init sweep: which masks of a trained run to evaluate untrained, and on what.

``InitSweepConfig`` names everything that changes the sweep's rows (criteria, Mask-1 actions,
the prune schedule, the split, the seed, the evaluation batch) and nothing that does not (the run
folder swept, where the data lives, where the results go). Each value is stored in one
canonical form, so that spellings of one sweep agree: names as a comma list in the order given
(duplicates dropped, ``"all"`` kept as ``"all"``), powers, bases and cutoff settings as tuples.
Unset values (None) mean the model's reference schedule, powers 0..24, the whole split and the
engine's evaluation batch (``supermask.engine.EVAL_BATCH_SIZE``), filled in by
``supermask.init_sweep``, which also checks what needs the model (layer cutoffs against its
layers). See ``supermask.init_sweep`` for the meaning of bases, powers and cutoffs.
"""

from dataclasses import dataclass

from supermask import actions, criteria
from supermask.errors import ConfigError
from supermask.seeds import check_seed
from supermask.settings.fields import comma_items, is_int, is_real, one_of, option, positive_int, set_ints, unset

SPLITS = ("test", "val", "train")
DEFAULT_POWERS = tuple(range(25))  # the reference README's 0..24


def _names(value, registry, getter, what):
    """``"all"`` or the names of ``value`` (checked by ``getter``) as one comma string, order kept,
    duplicates dropped."""
    items = comma_items(value, what)
    if items == ["all"]:
        return "all"
    if not items:
        raise ConfigError(f"{what} must name at least one of {', '.join(registry)}, or all. Received: {what}={value!r}")
    for name in items:
        getter(name)
    return ",".join(dict.fromkeys(items))


def criteria_names(value):
    """Mask criteria (``supermask.criteria.CRITERIA``) from ``"all"``, ``"a,b"`` or a list, as
    ``"all"`` or ``"a,b"``; an unknown name raises ConfigError listing the valid ones."""
    return _names(value, criteria.CRITERIA, criteria.get_criterion, "criteria")


def mask1_names(value):
    """Mask-1 actions (``supermask.actions.MASK1_ACTIONS``), as ``criteria_names``."""
    return _names(value, actions.MASK1_ACTIONS, actions.get_mask1, "mask1")


def powers_list(value):
    """Prune powers from ``"0:25"`` (a Python range, step optional), ``"0,5,10"``, a mix, or a list of
    ints, as a tuple of ints >= 0, order kept, duplicates dropped."""
    if value is None:
        return None
    powers = []
    for item in comma_items(value, "powers"):
        if not isinstance(item, str):
            powers.append(item)
            continue
        try:
            parts = [int(p) for p in item.split(":")]
        except ValueError:
            parts = []
        if len(parts) == 1:
            powers.append(parts[0])
        elif len(parts) == 2 or (len(parts) == 3 and parts[2] != 0):
            powers.extend(range(*parts))
        else:
            raise ConfigError(f"powers must be integers >= 0: a range START:STOP[:STEP], a comma list, or both. "
                              f"Received: powers={value!r}")
    if not powers or not all(is_int(p) and p >= 0 for p in powers):
        raise ConfigError(f"powers must be a non-empty list of integers >= 0. Received: powers={value!r}")
    return tuple(dict.fromkeys(int(p) for p in powers))


def bases_list(value):
    """Prune bases (the fraction a layer keeps per power, one per layer group) from ``"0.8,0.9"`` or a
    list, as a tuple of floats in (0, 1]."""
    if value is None:
        return None
    items = comma_items(value, "prune_base")
    try:
        bases = [float(b) if isinstance(b, str) else b for b in items]
    except ValueError:
        bases = None
    if not bases or not all(is_real(b) and 0.0 < b <= 1.0 for b in bases):
        raise ConfigError(f"prune_base must be numbers in (0, 1], one per layer group. Received: prune_base={value!r}")
    return tuple(float(b) for b in bases)


def _cutoffs(item, value):
    """One cutoff setting from ``"4,6"`` or ``[4, 6]`` as a tuple of ints."""
    parts = comma_items(item, "layer_cutoffs")
    try:
        out = tuple(int(p) if isinstance(p, str) else p for p in parts)
    except ValueError:
        out = None
    if not out or not all(is_int(c) for c in out):
        raise ConfigError(f"layer_cutoffs must be settings of integers, each written A,B. Received: "
                          f"layer_cutoffs={value!r}")
    return tuple(int(c) for c in out)


def cutoff_settings(value):
    """Layer-cutoff settings from one setting (``"4,6"``, ``[4, 6]``) or several (``["4,6", "6"]``,
    ``[[4, 6], [6]]``), as a tuple of settings (tuples of ints), order kept, duplicates dropped.
    Whether a setting fits the model's layers is checked by ``supermask.init_sweep``."""
    if value is None:
        return None
    one = isinstance(value, str) or (isinstance(value, (list, tuple)) and value and is_int(value[0]))
    items = comma_items([value] if one else value, "layer_cutoffs")
    if not items:
        raise ConfigError(f"layer_cutoffs must hold at least one setting. Received: layer_cutoffs={value!r}")
    return tuple(dict.fromkeys(_cutoffs(item, value) for item in items))


@dataclass(frozen=True)
class InitSweepSettings:
    """The masks a sweep builds and how it measures them (``python -m supermask.init_sweep``)."""

    criteria: str = option("all", "comma list of mask criteria, or all: " + ", ".join(criteria.BUILTIN),
                           normalize=criteria_names)
    mask1: str = option("none", "comma list of Mask-1 actions applied to the kept init weights, or all (the "
                                "paper's supermask uses signed_constant): " + ", ".join(actions.MASK1_ACTIONS),
                        normalize=mask1_names)
    prune_base: tuple = unset("comma list of keep fractions per power, one per layer group: a layer keeps "
                              "base**power of its kernel (default: the model's reference values, fc 0.8,0.9; "
                              "conv2/conv4 0.9,0.8,0.9; conv6 0.85,0.8,0.9)", normalize=bases_list)
    powers: tuple = unset("prune powers: START:STOP (a range), a comma list, or both (default: 0:25)",
                          normalize=powers_list)
    # Several settings in one flag (--layer-cutoffs 4,6 6): supermask.init_sweep's command adds the
    # flag itself (nargs="+"), which the generated flags cannot express.
    layer_cutoffs: tuple = unset("one or more settings, each a comma list of cumulative trainable-variable "
                                 "counts closing a layer group (kernel + bias = 2 per layer, as in the reference); "
                                 "group k uses the k-th base (default: fc 4,6; conv2 4,8,10; conv4 8,12,14; "
                                 "conv6 12,16,18)", normalize=cutoff_settings, cli=False)
    split: str = option("test", "split to evaluate on (the reference's: test)", choices=lambda: SPLITS)
    max_examples: int = unset("evaluate on the first N examples of the split only (default: all)")
    batch_size: int = unset("evaluation batch size (default: supermask.engine.EVAL_BATCH_SIZE, 1000)")
    seed: int = option(0, "seeds the random criterion, the sign-aware criteria's tie-break and random Mask-1 "
                          "actions")

    def __post_init__(self):
        self._check_init_sweep()

    def _check_init_sweep(self):
        object.__setattr__(self, "criteria", criteria_names(self.criteria))
        object.__setattr__(self, "mask1", mask1_names(self.mask1))
        object.__setattr__(self, "prune_base", bases_list(self.prune_base))
        object.__setattr__(self, "powers", powers_list(self.powers))
        object.__setattr__(self, "layer_cutoffs", cutoff_settings(self.layer_cutoffs))
        one_of(self, "split", SPLITS)
        positive_int(self, "max_examples", "batch_size")
        check_seed(self.seed)
        set_ints(self, "max_examples", "batch_size", "seed")

    def criterion_names(self):
        """The criteria swept, ``"all"`` spelled out (in registry order)."""
        return tuple(criteria.BUILTIN) if self.criteria == "all" else tuple(self.criteria.split(","))

    def mask1_names(self):
        """The Mask-1 actions swept, ``"all"`` spelled out (in registry order)."""
        return tuple(actions.MASK1_ACTIONS) if self.mask1 == "all" else tuple(self.mask1.split(","))

    def power_list(self):
        """The powers swept (``DEFAULT_POWERS`` when unset)."""
        return DEFAULT_POWERS if self.powers is None else self.powers


@dataclass(frozen=True)
class InitSweepConfig(InitSweepSettings):
    """The ``init_sweep`` command's settings: one section, ``InitSweepSettings``; its hash
    (``fields.config_hash``) is that of its non-default fields in their canonical form."""
