"""The house style of the report's figures: palette, the % remaining axis, titles and legends that
fit, and saving (same results, same bytes). Every figure is saved through ``save``."""

import textwrap
from pathlib import Path

from supermask.errors import ConfigError
from supermask.report.labels import remaining_ticks, tick_label

# Okabe & Ito's colour-blind-safe palette (black last); curves past it change line style.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
STYLES = ("-", "--", ":", "-.")
DPI = 120
FORMATS = ("png", "pdf", "svg")
# No creation date in vector files: the same results give the same bytes.
METADATA = {"png": None, "pdf": {"CreationDate": None}, "svg": {"Date": None}}


def check_format(fmt):
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}. Received: format={fmt!r}")
    return fmt


def pyplot():
    # Lazy: matplotlib is an optional extra (``supermask[report]``) that only drawing needs, so the
    # package, its checks, labels and Markdown import without it; the first figure asks for it.
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def colour(i):
    return PALETTE[i % len(PALETTE)]


def remaining_axis(ax, values):
    """Log x axis of % weights remaining over ``values``, largest on the left as in the papers."""
    ax.set_xscale("log")
    lo, hi = min(values), max(values)
    ax.set_xlim(hi * 1.15, lo / 1.15)  # reversed
    ticks = remaining_ticks(values)
    ax.set_xticks(ticks)
    ax.set_xticklabels([tick_label(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("weights remaining (%)")
    ax.grid(True, alpha=0.3)


def wrap(text, width):
    """``text`` in lines of at most ``width`` characters, words (a model's name) kept whole."""
    return "\n".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)) or text


def title(ax, text):
    """A title of at most a figure's width: long ones (own model names, many fields) wrap."""
    ax.set_title(wrap(text, int(9.5 * ax.figure.get_figwidth())), fontsize=10)


def legend(ax, entries):
    """A legend of ``(handle, label)`` pairs, handed to matplotlib explicitly: when it collects them
    itself it drops labels that start with "_" (an own model ``__main__:build``). More than four
    go below the axes, the figure made taller to hold them."""
    if not entries:
        return
    handles, labels = zip(*entries)
    if len(entries) <= 4:
        ax.legend(handles, [wrap(label, 60) for label in labels], fontsize=8)
        return
    labels = [wrap(label, int(15 * ax.figure.get_figwidth())) for label in labels]
    lines = sum(label.count("\n") + 1 for label in labels)
    ax.figure.set_figheight(ax.figure.get_figheight() + 0.17 * lines + 0.2)
    ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), borderaxespad=0)


def save(fig, folder, name, rect=None):
    """Save ``fig`` as ``folder/name`` (its extension picks the format), nothing cut off; returns ``name``."""
    fig.tight_layout(rect=rect)
    fig.savefig(Path(folder) / name, dpi=DPI, bbox_inches="tight", pad_inches=0.1,
                metadata=METADATA[Path(name).suffix[1:]])
    pyplot().close(fig)
    return name
