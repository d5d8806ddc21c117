"""The tables, figures and summary of ``benchmarks/reproduce.py``: the papers' claims (typed in,
each with its source) beside mean ± std over the trials of the runs it performed.

Everything here reads results already on disk (``supermask.results``) and writes nothing but the
figures it is asked for; ``reproduce.py`` runs the experiments and calls ``markdown``,
``figures`` and ``update_readme``.
"""

from pathlib import Path

import numpy as np

from supermask import early_stop, results, store
from supermask.errors import ConfigError

LOTTERY_PAPER = "Frankle & Carbin 2019 (ICLR), *The Lottery Ticket Hypothesis*"
DLT_PAPER = "Zhou et al. 2019 (NeurIPS), *Deconstructing Lottery Tickets*"

# The papers' claims, typed in with where they are stated. Sources that could only be read
# through a secondary copy say so; figure-only values are not typed in (the claim is quoted).
PAPER = {
    "imp_dense": ("the original network (its accuracy is drawn in Fig. 3, not stated in the text)",
                  f"{LOTTERY_PAPER}, Fig. 3"),
    "imp_51.3": ("\"reaches higher test accuracy faster than the original network but slower than when "
                 "Pm = 21.1 %\"", f"{LOTTERY_PAPER}, Sec. 2, Fig. 3"),
    "imp_21.1": ("learns fastest; \"2.51x faster than when reinitialized and is half a percentage point "
                 "more accurate\"", f"{LOTTERY_PAPER}, Sec. 2, Figs. 3–4"),
    "imp_13.5": ("test accuracy \"improving by more than 0.3 percentage points\" over the original",
                 f"{LOTTERY_PAPER}, Sec. 2, Fig. 4a"),
    "imp_7.0": ("\"When Pm < 21.1 %, learning slows\"",
                f"{LOTTERY_PAPER}, Sec. 2, Fig. 3"),
    "imp_3.6": ("\"a winning ticket regresses to the performance of the original network\"",
                f"{LOTTERY_PAPER}, Sec. 2, Fig. 3"),
    "early_stop": ("winning tickets learn faster as Pm falls to 21 %, \"at which point early-stopping occurs "
                   "38 % earlier than for the original network\" (a ratio of 0.62); reinitialized networks \"learn increasingly "
                   "slower than the original network\"", f"{LOTTERY_PAPER}, Sec. 2, Fig. 4a"),
    "criteria": ("large_final and magnitude_increase work best, then large_init_large_final and movement; "
                 "random far below (ordering as summarised in secondary notes; no number typed in)",
                 f"{DLT_PAPER}, Sec. 3, Fig. 2"),
    "mask1": ("reinit, reshuffle and constant Mask-1 fail, but work \"as long as you keep the sign\" (the "
              "abstract: \"signs are all you need to make the re-initialized network train\")",
              f"{DLT_PAPER}, abstract and Sec. 4, Fig. 4"),
    "supermask_init": ("86 % on MNIST (large_final_same_sign, signed constant), over 80 % with the init "
                       "values (the latter via a secondary summary)", f"{DLT_PAPER}, abstract and Sec. 5"),
    "learned": ("95.3 % on MNIST fc without DWR after 2000 epochs (via a secondary summary of Sec. 6; the "
                "table itself was not checked)", f"{DLT_PAPER}, Sec. 6"),
    "learned_dwr": ("Dynamic Weight Rescaling raises the learned supermask's accuracy (no fc/MNIST number typed in: "
                    "the table could not be checked)", f"{DLT_PAPER}, Sec. 6"),
    "edge_popup": ("edge-popup's top-k supermask (no fc/MNIST number typed in)",
                   "Ramanujan et al. 2020 (CVPR), *What's Hidden in a Randomly Weighted Neural Network?*"),
    "supermask_cifar": ("41 % on CIFAR-10 (mask at init); learned with DWR: conv2 66.0 %, conv4 72.5 %, conv6 "
                        "76.5 % (the latter three via secondary notes)", f"{DLT_PAPER}, abstract and Sec. 6"),
}

# Levels reported for the IMP tables: with fc's per-round rates (20 % hidden, 10 % output)
# they keep 100, 51.3, 21.1, 13.5, 7.0 and 3.6 % of the weights, the papers' marked points.
REPORT_LEVELS = (0, 3, 7, 9, 12, 15)
LEVEL_CLAIMS = {0: "imp_dense", 3: "imp_51.3", 7: "imp_21.1", 9: "imp_13.5", 12: "imp_7.0", 15: "imp_3.6"}
SIGN_KEEPING = {"none": "yes (init values)", "random_reinit": "no", "random_reshuffle": "no",
                "signed_reinit": "yes", "signed_reshuffle": "yes", "signed_constant": "yes",
                "rand_signed_constant": "no"}
SWEEP_SHOWN = ("large_final_same_sign", "large_final", "magnitude_increase", "movement",
               "large_init_large_final", "random")


LEARNERS = {  # run folder: (label, SupermaskConfig fields)
    "fc_bernoulli": ("Bernoulli", {}),
    "fc_bernoulli_dwr": ("Bernoulli + DWR", {"dwr": True}),
    "fc_edge_popup": ("edge-popup, k = 0.5", {"learner": "edge-popup", "k": 0.5}),
}
LEARNED_CLAIM = {"fc_bernoulli": "learned", "fc_bernoulli_dwr": "learned_dwr", "fc_edge_popup": "edge_popup"}


# --- tables --------------------------------------------------------------------------------------


def pm(values, scale=100.0, digits=2):
    """``mean ± std`` (sample std) of ``values`` times ``scale``; '–' for none."""
    mean, std = results.mean_std([v for v in values if v is not None])
    return "–" if mean is None else f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def by_seed(exp, level, key):
    """``{seed: key of level}`` for each trial of ``exp`` that finished ``level`` (None where unset)."""
    return {seed: row[key] for seed in exp.seeds for row in exp.trials[seed] if row["level"] == level}


def level_values(exp, level, key):
    """``key`` of ``level`` in each trial of ``exp`` that finished it (seed order)."""
    return list(by_seed(exp, level, key).values())


def paired(exp, a, b, op):
    """``op(x, y)`` per seed for ``a`` and ``b``, each ``(level, key)``, where both are set."""
    xs, ys = by_seed(exp, *a), by_seed(exp, *b)
    return [op(xs[s], ys[s]) for s in xs if s in ys and xs[s] is not None and ys[s] is not None]


def remaining(exp, level):
    values = level_values(exp, level, "percent_remaining")
    return f"{np.mean(values):.1f}" if values else "–"


def imp_section(exp):
    lines = ["## 1. Lottery tickets: LeNet-300-100 on MNIST (iterative pruning, reset to init)", "",
             f"Test accuracy (%) at early stop ({early_stop.DESCRIPTIONS[exp.early_stop]}), mean ± std over "
             "trials; the control trains the same mask from fresh random weights. \"ticket − dense\" and "
             "\"ticket − control\" are per-trial differences in percentage points.", "",
             "| % weights remaining | level | ticket | random-reinit control | ticket − control | ticket − dense "
             "| paper (claim) | source |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for level in REPORT_LEVELS:
        ticket = level_values(exp, level, "test_accuracy_at_early_stop")
        if not ticket:
            continue
        control = level_values(exp, level, "control_test_accuracy_at_early_stop")
        acc, ctl = (level, "test_accuracy_at_early_stop"), (level, "control_test_accuracy_at_early_stop")
        minus_control = paired(exp, acc, ctl, lambda t, c: t - c)
        minus_dense = paired(exp, acc, (0, "test_accuracy_at_early_stop"), lambda t, d: t - d)
        claim, source = PAPER[LEVEL_CLAIMS[level]] if exp.hparams.get("model") == "fc" else ("–", "")
        lines.append(f"| {remaining(exp, level)} | {level} | {pm(ticket)} | {pm(control)} | "
                     f"{pm(minus_control)} | {pm(minus_dense) if level else '–'} | {claim} | {source} |")
    return lines + ["", "![accuracy vs weights remaining](reproduction/imp/accuracy_vs_remaining.png)", ""]


def early_stop_section(exp):
    lines = ["## 2. Early stopping: how fast tickets learn", "",
             f"Early-stop iteration: {early_stop.DESCRIPTIONS[exp.early_stop]}, evaluated every "
             f"{exp.hparams.get('eval_every')} iterations of {exp.hparams.get('iterations')}; mean ± std over "
             "trials; \"ticket / dense\" is the per-trial ratio to the dense level 0 (below 1: the ticket stops "
             "earlier).", "",
             "| % weights remaining | ticket | random-reinit control | ticket / dense |",
             "| ---: | ---: | ---: | ---: |"]
    for level in REPORT_LEVELS:
        ticket = level_values(exp, level, "early_stop_iteration")
        if not ticket:
            continue
        control = level_values(exp, level, "control_early_stop_iteration")
        ratio = paired(exp, (level, "early_stop_iteration"), (0, "early_stop_iteration"),
                       lambda t, d: t / d if d else None)
        lines.append(f"| {remaining(exp, level)} | {pm(ticket, 1, 0)} | {pm(control, 1, 0)} | "
                     f"{pm(ratio, 1, 2) if ratio else '–'} |")
    claim, source = PAPER["early_stop"]
    dense, total = level_values(exp, 0, "early_stop_iteration"), exp.hparams.get("iterations")
    if dense and total and np.mean(dense) > 0.6 * total:
        what = "validation loss is still falling" if exp.early_stop == "val_loss" else \
            "validation accuracy is still rising"
        lines += ["", f"At this budget the dense network's {what} late in training (early stop at "
                  f"{pm(dense, 1, 0)} of {total} iterations), so an earlier stop of the tickets has little room to "
                  "show; the paper trains 50 000 iterations per level. `python benchmarks/reproduce.py --lth` runs "
                  "this section alone at 10 000 iterations per level, where the dense minimum falls well inside "
                  "the run: [lth/REPRODUCTION.md](lth/REPRODUCTION.md)."]
    return lines + ["", f"Paper: {claim} ({source}).", "",
                    "![early-stop iteration](reproduction/imp/early_stop_vs_remaining.png)", ""]


def ablation_table(imp, rows, levels, header):
    """Rows ``(name, extra cell, Experiment, key)`` as test accuracy at ``levels``, the header
    naming each level's % of weights remaining (from ``imp``)."""
    head = " | ".join(f"{remaining(imp, lvl)} %" for lvl in levels)
    lines = [f"| {header} | {head} |", "| --- | --- |" + " ---: |" * len(levels)]
    for name, extra, exp, key in rows:
        cells = " | ".join(pm(level_values(exp, lvl, key)) for lvl in levels)
        lines.append(f"| {name} | {extra} | {cells} |")
    return lines


def ablation_levels(experiments):
    last = min(max(r["level"] for rows in e.trials.values() for r in rows) for e in experiments)
    return [lvl for lvl in REPORT_LEVELS if 0 < lvl <= last]


def criteria_section(imp, experiments):
    if not experiments:
        return []
    rows = [("large_final (the lottery ticket)", r"\|w_final\|", imp, "test_accuracy_at_early_stop")]
    rows += [(e.hparams["criterion"], CRITERION_FORMULA.get(e.hparams["criterion"], ""), e,
              "test_accuracy_at_early_stop") for e in experiments]
    claim, source = PAPER["criteria"]
    table = ablation_table(imp, rows, ablation_levels(experiments), "mask criterion | score")
    return ["## 3. Mask criteria (Zhou et al.): which weights to keep", "",
            "The same IMP loop (reset kept weights to init, pruned weights zero), scoring the weights by "
            "each criterion; test accuracy (%) at early stop, mean ± std over trials, at the weights "
            "remaining in the header.", "", *table, "",
            f"Paper: {claim} ({source}).", "",
            "![criteria](reproduction/criteria/accuracy_vs_remaining.png)", ""]


CRITERION_FORMULA = {"magnitude_increase": r"\|w_final\| − \|w_init\|", "movement": r"\|w_final − w_init\|",
                     "large_init_large_final": "large in both", "random": "uniform random"}


def mask1_section(imp, experiments):
    if not experiments:
        return []
    rows = [("none (the lottery ticket)", SIGN_KEEPING["none"], imp, "test_accuracy_at_early_stop"),
            ("random_reinit (the control)", SIGN_KEEPING["random_reinit"], imp,
             "control_test_accuracy_at_early_stop")]
    rows += [(e.hparams["mask1"], SIGN_KEEPING.get(e.hparams["mask1"], "?"), e, "test_accuracy_at_early_stop")
             for e in experiments]
    table = ablation_table(imp, rows, ablation_levels(experiments), "Mask-1 action | keeps the init's signs")
    claim, source = PAPER["mask1"]
    return ["## 4. Mask-1 actions: what the kept weights start from", "",
            "large_final masks; the kept weights restart from the action's values (pruned ones zero). "
            "Test accuracy (%) at early stop, mean ± std over trials.", "", *table, "",
            f"Paper: {claim} ({source}).", "", "![Mask-1](reproduction/mask1/accuracy_vs_remaining.png)", ""]


def sweep_best(rows_by_seed, criterion, mask1):
    """Per trial, the best accuracy over the sweep's densities and that density."""
    best = []
    for rows in rows_by_seed.values():
        points = [r for r in rows if r["criterion"] == criterion and r["mask1"] == mask1]
        if points:
            top = max(points, key=lambda r: r["accuracy"])
            best.append((top["accuracy"], top["density"]))
    return best


def sweep_section(rows_by_seed, title="## 5. Masks at initialisation: the supermask effect", paper="supermask_init"):
    if not rows_by_seed:
        return []
    lines = [title, "",
             "Each trial's dense level 0 gives (init, final) weights; every criterion masks the *untrained* "
             "network at each density of the sweep (power p: fc's hidden layers keep 0.8^p, the output 0.9^p) "
             "and the kept weights take their init values or the signed constant (sign of init × the layer's "
             "std). Best test accuracy over the densities, mean ± std over trials (chance is 10 %).", "",
             "| criterion | Mask-1 | best test accuracy (%) | at % weights remaining |",
             "| --- | --- | ---: | ---: |"]
    criteria = [c for c in SWEEP_SHOWN if any(r["criterion"] == c for rows in rows_by_seed.values() for r in rows)]
    for criterion in criteria:
        for mask1 in ("signed_constant", "none"):
            best = sweep_best(rows_by_seed, criterion, mask1)
            if best:
                lines.append(f"| {criterion} | {mask1} | {pm([a for a, _ in best])} | "
                             f"{pm([d for _, d in best], 100, 1)} |")
    claim, source = PAPER[paper]
    return lines + ["", f"Paper: {claim} ({source}).", "", "![init sweep](reproduction/init_sweep/init_sweep.png)", ""]


def learned_section(learned):
    if not learned:
        return []
    lines = ["## 6. Learned supermasks: fc on MNIST", "",
             "Scores learned over frozen Glorot-normal weights (`python -m supermask.train_supermask`, each "
             "learner's reference optimiser). Test accuracy (%): for Bernoulli the paper's protocol (mean of "
             "10 sampled masks) and the deterministic p > 0.5 mask; edge-popup's top-k mask is deterministic. "
             "Mean ± std over seeds.", "",
             "| learner | epochs | seeds | test acc., paper's protocol | deterministic mask | weights kept (%) | paper "
             "(claim) | source |",
             "| --- | ---: | --- | ---: | ---: | ---: | --- | --- |"]
    for name, runs in learned.items():
        det = [m["final"]["deterministic"]["test_accuracy"] for _, m in runs]
        sampled = [m["final"].get("sampled", {}).get("test_accuracy_mean") for _, m in runs]
        protocol = pm(sampled) if all(v is not None for v in sampled) else pm(det)
        kept = [m["density"]["total"]["inference"] for _, m in runs]
        claim, source = PAPER[LEARNED_CLAIM[name]]
        lines.append(f"| {LEARNERS[name][0]} | {runs[0][1]['epochs']:.3g} | {', '.join(str(h['seed']) for h, _ in runs)} "
                     f"| {protocol} | {pm(det)} | {pm(kept, 100, 1)} | {claim} | {source} |")
    return lines + ["", "![learned supermasks](reproduction/learned/test_accuracy.png)", ""]


def conv_section(conv):
    lines = ["## 7. Conv networks on CIFAR-10", ""]
    if isinstance(conv, str):
        claim, source = PAPER["supermask_cifar"]
        return lines + [f"{conv[0].upper()}{conv[1:]}. Rows it would add: IMP ticket vs control, masks at init "
                        "and the learned Bernoulli supermask with DWR, for conv2, conv4 and conv6.", "",
                        f"Paper: {claim} ({source}).", ""]
    for model, found in conv.items():
        exp = found["imp"]
        lines += [f"### {model}", "", "| % weights remaining | ticket | random-reinit control |", "| ---: | ---: | ---: |"]
        for level in REPORT_LEVELS:
            ticket = level_values(exp, level, "test_accuracy_at_early_stop")
            if ticket:
                lines.append(f"| {remaining(exp, level)} | {pm(ticket)} | "
                             f"{pm(level_values(exp, level, 'control_test_accuracy_at_early_stop'))} |")
        best = sweep_best(found["sweep"], "large_final_same_sign", "signed_constant")
        learned = [m["final"].get("sampled", {}).get("test_accuracy_mean") for _, m in found["learned"]]
        lines += ["", f"Mask at init (large_final_same_sign, signed constant), best test accuracy: "
                  f"{pm([a for a, _ in best])} %; learned Bernoulli supermask with DWR: {pm(learned)} %.", ""]
    claim, source = PAPER["supermask_cifar"]
    return lines + [f"Paper: {claim} ({source}).", ""]


def budget_section(budget, found, run, timings):
    imp = found["imp"].hparams
    total = sum(timings.values())
    return ["## Budget and deviations from the papers' protocol", "",
            "| setting | this run | the papers |", "| --- | --- | --- |",
            f"| trials (seeds) | {budget.trials} ({', '.join(map(str, found['imp'].seeds))}) | 5 (Frankle & Carbin, "
            "winning tickets) |",
            f"| iterations per IMP level | {imp.get('iterations')} | 50 000 (fc) |",
            f"| IMP levels | {budget.levels} (criteria, Mask-1: {budget.ablation_levels}) | to ≈ 1–2 % remaining |",
            f"| evaluation every | {imp.get('eval_every')} iterations | 100 |",
            f"| batch, optimiser | {imp.get('batch_size')}, Adam {imp.get('learning_rate')} | 60, Adam 1.2e-3 |",
            f"| pruning per round | {imp.get('rate_fc')} hidden, {imp.get('rate_output')} output | 20 % hidden, 10 % "
            "output |",
            *([f"| learned supermask epochs | {budget.supermask_epochs:g} | 2000 |"] if "learned" in budget.studies
              else []), "",
            "Other deviations, none of which changes a finding: validation = the last 5 000 training images (as "
            "Frankle & Carbin); " + ("early stopping at the minimum validation loss, as Frankle & Carbin (App. C), "
            "evaluated every 100 iterations" if found["imp"].early_stop == "val_loss" else
            "early stopping picks the best validation *accuracy* (Frankle & Carbin: minimum validation loss)")
            + "; the random-reinit control draws fresh Glorot-normal weights (Zhou et al.'s code "
            "permutes the layer's init values); Mask-1 actions and criteria follow `supermask/actions.py` and "
            "`supermask/criteria.py`, whose docstrings state their reference semantics.", "",
            f"Backend `{run['backend']}`; machine: {_machine(run['machine'])}; {run['machine'].get('platform')}. Wall time of the steps this work folder ran: {total / 60:.1f} min ("
            + ", ".join(f"{k} {v / 60:.1f}" for k, v in timings.items()) + ").", ""]


def headline(found, figures_prefix="reproduction/"):
    """The summary table: one row per headline claim, ours (mean ± std) beside the paper's."""
    imp = found["imp"]
    seeds = ", ".join(map(str, imp.seeds))
    ticket, control = "test_accuracy_at_early_stop", "control_test_accuracy_at_early_stop"
    rows = []

    def add(what, ours, paper_key):
        if ours and "–" not in ours:
            claim, source = PAPER[paper_key]
            rows.append(f"| {what} | {ours} | {claim} | {source} |")

    add("LeNet-300-100, dense: test accuracy (%)", pm(level_values(imp, 0, ticket)), "imp_dense")
    for level, key in ((3, "imp_51.3"), (7, "imp_21.1"), (15, "imp_3.6")):
        if level_values(imp, level, ticket):
            add(f"ticket / random reinit at {remaining(imp, level)} % of weights (%)",
                f"{pm(level_values(imp, level, ticket))} / {pm(level_values(imp, level, control))}", key)
    if level_values(imp, 7, "early_stop_iteration"):
        add(f"early-stop iteration at {remaining(imp, 7)} %, ticket / dense",
            pm(paired(imp, (7, "early_stop_iteration"), (0, "early_stop_iteration"),
                      lambda t, d: t / d if d else None), 1, 2), "early_stop")
    at = 7 if any(level_values(e, 7, ticket) for e in found["criteria"] + found["mask1"]) else 3
    if found["criteria"]:
        add(f"mask criteria at {remaining(imp, at)} % of weights (%)", "; ".join(
            f"{name} {pm(level_values(e, at, ticket))}" for name, e in
            [("large_final", imp)] + [(e.hparams["criterion"], e) for e in found["criteria"]]), "criteria")
    if found["mask1"]:
        add(f"Mask-1 actions at {remaining(imp, at)} % of weights (%)", "; ".join(
            f"{name} {pm(values)}" for name, values in
            [("init values", level_values(imp, at, ticket)), ("random_reinit", level_values(imp, at, control))]
            + [(e.hparams["mask1"], level_values(e, at, ticket)) for e in found["mask1"]]), "mask1")
    for mask1, weights in (("signed_constant", "signed constant"), ("none", "init values")):
        best = sweep_best(found["sweep"], "large_final_same_sign", mask1)
        add(f"untrained network, large_final_same_sign mask, {weights}: best test accuracy (%)",
            pm([a for a, _ in best]), "supermask_init")
    for name, runs in found["learned"].items():
        acc = [m["final"].get("sampled", {}).get("test_accuracy_mean") or m["final"]["deterministic"]["test_accuracy"]
               for _, m in runs]
        add(f"learned supermask, {LEARNERS[name][0]}, {runs[0][1]['epochs']:.3g} epochs (%)", pm(acc),
            LEARNED_CLAIM[name])
    return [f"Mean ± std over seeds {seeds}; test accuracy at early stop unless stated.", "",
            "| result | ours | paper | source |", "| --- | ---: | --- | --- |", *rows, "",
            f"![Test accuracy at early stop vs weights remaining, fc/MNIST]({figures_prefix}imp/accuracy_vs_remaining.png)"]


def _machine(m):
    return f"{m.get('cpu')}, {m.get('cores')} cores" + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU")


def provenance(budget, run, command):
    """Who ran what where: ``run`` is the work folder's record of the last command that ran
    (``command``, ``date``, ``backend``, ``machine``); ``command`` wrote this report."""
    text = (f"Runs by `{run['command']}` (budget `{budget.name}`), last on {run['date']}, backend `{run['backend']}`, "
            f"{_machine(run['machine'])}.")
    return text + (f" Report written by `{command}`." if command != run["command"] else "")


def markdown(budget, found, run, timings, command):
    lines = ["# Reproduction of the papers' headline results", "",
             provenance(budget, run, command) + " Every number below comes from runs this script "
             "performed; only the \"paper\" entries are typed in, each with its source. Figures: "
             "[`reproduction/`](reproduction/). Lower budgets than the papers' (see the last section) lower the "
             "absolute accuracies; the comparisons are the point.", "", "## Summary", ""]
    lines += headline(found) + [""]
    lines += imp_section(found["imp"])
    lines += early_stop_section(found["imp"])
    lines += criteria_section(found["imp"], found["criteria"])
    lines += mask1_section(found["imp"], found["mask1"])
    lines += sweep_section(found["sweep"])
    lines += learned_section(found["learned"])
    lines += conv_section(found["conv"])
    lines += budget_section(budget, found, run, timings)
    return "\n".join(lines)


README_START, README_END = "<!-- reproduction: start (written by benchmarks/reproduce.py) -->", \
    "<!-- reproduction: end -->"


def readme_parts(readme):
    """``(text before, text after)`` the reproduction markers of ``readme``; ConfigError without them."""
    try:
        text = Path(readme).read_text()
    except OSError as exc:
        raise ConfigError(f"Cannot read --readme {readme}: {exc.strerror}.") from None
    if README_START not in text or README_END not in text.split(README_START, 1)[1]:
        raise ConfigError(f"{readme} has no reproduction markers ({README_START} ... {README_END}); add them where "
                          "the table goes, or pass --no-readme.")
    head, rest = text.split(README_START, 1)
    return head, rest.split(README_END, 1)[1]


def update_readme(readme, block):
    """Replace the text between the reproduction markers of ``readme`` with ``block``."""
    head, tail = readme_parts(readme)
    with store.atomic_path(readme) as tmp:
        Path(tmp).write_text(f"{head}{README_START}\n{block}\n{README_END}{tail}")


# --- figures --------------------------------------------------------------------------------------


def mean_sweep_rows(rows_by_seed):
    """The init-sweep rows averaged over trials per (criterion, Mask-1, power), for the figure."""
    groups = {}
    for rows in rows_by_seed.values():
        for r in rows:
            groups.setdefault((r["criterion"], r["mask1"], r["power"]), []).append(r)
    return [{"criterion": c, "mask1": m, "power": p, "density": float(np.mean([r["density"] for r in rs])),
             "accuracy": float(np.mean([r["accuracy"] for r in rs]))}
            for (c, m, p), rs in groups.items() if c in SWEEP_SHOWN]


def figures(found, folder):
    """Write every figure under ``folder`` (sub-folders per section); returns their paths."""
    from supermask import report

    written = []
    for sub, experiments, subject in (("imp", [found["imp"]], None),
                                      ("criteria", [found["imp"], *found["criteria"]], "fc/mnist mask criteria"),
                                      ("mask1", [found["imp"], *found["mask1"]], "fc/mnist Mask-1 actions")):
        if len(experiments) > 1 or sub == "imp":
            (folder / sub).mkdir(parents=True)
            written += [folder / sub / n for n in report.lottery_figures(experiments, folder / sub,
                                                                          curves=sub == "imp", subject=subject)]
    if found["sweep"]:
        (folder / "init_sweep").mkdir()
        n = len(found["sweep"])
        title = f"fc/mnist: accuracy of the untrained masked network (mean of {n} trial{'s' if n > 1 else ''})"
        written += [folder / "init_sweep" / f for f in
                    report.init_sweep_figure(mean_sweep_rows(found["sweep"]), folder / "init_sweep", title)]
    if found["learned"]:
        (folder / "learned").mkdir()
        written.append(folder / "learned" / report.runs_figure(
            {LEARNERS[name][0]: runs for name, runs in found["learned"].items()}, folder / "learned", "test_accuracy.png",
            "fc/mnist learned supermasks: test accuracy during training"))
    return written


