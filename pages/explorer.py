"""Explorer: accuracy against resources for every architecture, dataset and method;
a budget or a device picks a configuration, and a card says why."""
import math

import pandas as pd
import streamlit as st

from elastic import catalog, explore
from elastic.methods import METHODS
from elastic.ui import cards, charts, data, figures, page, state, widgets

page.start("Explorer",
           "Every measured configuration, accuracy against MACs, parameters, memory and latency. "
           "Set a budget or pick a device: of the configurations that fit, the one with the best validation accuracy "
           "is ringed and explained, with its test accuracy.")

frame = explore.configurations(data.shown_results())

choice = state.choices()
with st.sidebar:
    dataset = widgets.pick_dataset(catalog.DATASET_NAMES, choice.dataset)
    offered = catalog.archs_for(dataset)
    for problem in explore.query_problems(st.query_params.to_dict(), catalog.DATASET_NAMES, offered, where=dataset):
        st.warning(problem)
    schedule = widgets.pick_one(
        "Training schedule", explore.schedules(frame, dataset), choice.schedule or None, key="pick.schedule",
        help="Rows of one schedule at a time: a network trained for 12 epochs is never on one front with one "
             "trained for 60. Pruned networks that start from a baseline belong to their baseline's schedule.")
    scheduled = explore.select(frame, dataset=dataset, schedule=schedule)
    arch = widgets.pick_arch(offered, choice.arch, allow_all=True)
    here = explore.select(scheduled, dataset=dataset, arch=arch)
    present = [m for m in METHODS.names() if m in set(here["method"])]
    methods = widgets.pick_many("Methods", present, choice.methods, key="pick.methods",
                                format_func=explore.method_label, pills=True)
    modes = choice.modes
    if here["method"].map(explore.has_modes).any():
        modes = widgets.pick_many("Complexity modes", explore.MODES, choice.modes, key="pick.modes", pills=True,
                                  help="Complexity-driven pruning only. PA: parameter-aware, FA: FLOPs-aware, "
                                       "MA: memory-aware.")
rows = explore.select(here, dataset=dataset, methods=methods, modes=modes)

state.remember(choice.update(dataset=dataset, schedule=schedule, arch=arch,
                             methods=None if list(methods) == present else methods, modes=modes))


@page.fragment
def budget_view(rows: pd.DataFrame) -> None:
    """The budget, the card and the plots: a fragment, so moving the slider
    reruns only this part, not the pickers and tables around it."""
    choice = state.choices()
    left, middle, right = st.columns([1.6, 3, 1.8])
    metric = widgets.pick_metric(choice.metric, where=left)
    device = widgets.pick_device(data.devices(), choice.device, where=right)
    precision = widgets.pick_precision(choice.precision, where=right) if device else choice.precision
    spec = explore.slider_spec(metric, rows[metric.column])
    budget = None            # None: no limit
    if spec is None:
        middle.info(f"{metric.label}: {explore.NOT_MEASURED} for these configurations.")
    else:
        budget = widgets.budget_slider(spec, metric, choice.budget if metric.key == choice.metric else None,
                                       where=middle)
    state.remember(choice.update(metric=metric.key, budget=budget, device=device.key if device else "",
                                 precision=precision),
                   share=("dataset", "schedule", "arch", "methods", "modes", "metric", "budget", "device",
                          "precision"))
    if device:
        cards.device_sources(device)

    pick = explore.best_under_budget(rows, metric, math.inf if budget is None else budget,
                                     device=device, precision=precision)
    cards.best_card(pick, frame)

    plotted = explore.plotted(metric.key)
    st.html(figures.legend_html(rows["method"], best=pick.row is not None))
    for pair in (plotted[:2], plotted[2:]):
        for cell, shown in zip(st.columns(2), pair):
            cell.vega_lite_chart(charts.tradeoff_chart(rows, shown, budget=budget if shown.key == metric.key else None,
                                                       best=pick.row), width="stretch")
    legend = ("Complexity-driven rows' marker shape: ■ PA, ◆ FA, ▲ MA (● every other row). Lines: each "
              "method's Pareto front. "
              "Dashed: the budget. Red ring: the chosen configuration. Hover a point for its configuration.")
    latency = plotted[-1]
    unmeasured = int(rows[latency.column].isna().sum())
    if unmeasured:
        legend += (f" {latency.label}: {explore.NOT_MEASURED} for {unmeasured} of {len(rows)} configurations "
                   "(`python -m elastic bench --fill-results` measures it).")
    st.caption(legend)


if here.empty:
    state.remember(choice.update(dataset=dataset, schedule=schedule, arch=arch),
                   share=("dataset", "schedule", "arch"))
    widgets.not_yet_run(dataset, [arch] if arch != explore.ALL_ARCHS else offered)
    st.stop()
budget_view(rows)

missing = explore.missing_methods(scheduled, dataset=dataset, arch=arch)
if missing:
    where = f"{'any architecture' if arch == explore.ALL_ARCHS else arch} on {dataset}"
    st.info(f"**Not yet run** for {where}: " + ", ".join(explore.method_label(m) for m in missing)
            + ". Nothing is shown or estimated for them.")
inapplicable = explore.not_applicable(arch)
if inapplicable:
    st.caption(", ".join(explore.method_label(m) for m in inapplicable)
               + f": does not apply to {arch}, which has no removable residual blocks.")
if arch == explore.ALL_ARCHS:
    unrun = [a for a in offered if a not in set(scheduled["arch"])]
    if unrun:
        widgets.not_yet_run(dataset, unrun)

st.subheader("How these numbers were made")
st.table(explore.how_made(rows), hide_index=True)
with st.expander("Provenance of every row shown"):
    st.dataframe(rows[explore.PROVENANCE], hide_index=True, width="stretch")
