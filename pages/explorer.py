"""Explorer: accuracy against resources for every architecture, dataset and method;
a budget or a device picks a configuration, and a card says why."""
import math

import pandas as pd
import streamlit as st

from elastic import explore
from elastic.ui import cards, data, figures, page, state, widgets

page.start("Explorer",
           "Every measured configuration, accuracy against MACs, parameters, memory and latency. "
           "Set a budget or pick a device: of the configurations that fit, the one with the best validation accuracy "
           "is ringed and explained, with its test accuracy.")

frame = data.shown_results(f"No results yet in `{data.results_dir()}`. Train a baseline to start, e.g. "
                           "`python -m elastic train --arch resnet20 --epochs 12 --label 'short CPU schedule'`.")

choice = state.choices()
for problem in explore.query_problems(st.query_params.to_dict(), explore.datasets(frame),
                                      sorted(set(frame["arch"]))):
    st.warning(problem)
with st.sidebar:
    dataset = widgets.pick_dataset(explore.datasets(frame), choice.dataset)
    schedule = widgets.pick_one(
        "Training schedule", explore.schedules(frame, dataset), choice.schedule or None, key="pick.schedule",
        help="Rows of one schedule at a time: a network trained for 12 epochs is never on one front with one "
             "trained for 60. Pruned networks that start from a baseline belong to their baseline's schedule.")
    scheduled = explore.select(frame, dataset=dataset, schedule=schedule)
    arch = widgets.pick_arch(explore.archs(scheduled, dataset), choice.arch, allow_all=True)
    here = explore.select(scheduled, dataset=dataset, arch=arch)
    present = [m for m in explore.METHODS.names() if m in set(here["method"])]
    methods = widgets.pick_many("Methods", present, choice.methods, key="pick.methods",
                                format_func=explore.method_label)
    modes = choice.modes
    if (here["mode"] != "").any():
        modes = widgets.pick_many("Complexity modes", explore.MODES, choice.modes, key="pick.modes",
                                  help="PA: parameter-aware, FA: FLOPs-aware, MA: memory-aware.")
rows = explore.select(here, dataset=dataset, methods=methods, modes=modes)

state.remember(choice.update(dataset=dataset, schedule=schedule, arch=arch,
                             methods=None if list(methods) == present else methods, modes=modes))


@st.fragment
def budget_view(rows: pd.DataFrame) -> None:
    """The budget, the card and the plots: a fragment, so moving the slider
    reruns only this part, not the pickers and tables around it."""
    choice = state.choices()
    left, middle, right = st.columns([1.2, 3, 1.8])
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

    plotted = [explore.METRICS["memory_int8" if metric.key == "memory_int8" and key == "memory" else key]
               for key in explore.PLOTTED]
    st.plotly_chart(figures.tradeoff_figure(rows, plotted, budget_metric=metric, budget=budget, best=pick.row),
                    width="stretch", config={"displaylogo": False})
    legend = ("Marker shape: ● no mode, ■ PA, ◆ FA, ▲ MA. Lines: each method's Pareto front. "
              "Dashed: the budget. Red ring: the chosen configuration. Hover a point for its configuration.")
    unmeasured = int(rows["latency_ms"].isna().sum())
    if unmeasured:
        legend += (f" Latency: {explore.NOT_MEASURED} for {unmeasured} of {len(rows)} configurations "
                   "(`python -m elastic bench` measures it).")
    st.caption(legend)


budget_view(rows)

missing = explore.missing_methods(scheduled, dataset=dataset, arch=arch)
if missing:
    where = f"{'any architecture' if arch == explore.ALL_ARCHS else arch} on {dataset}"
    st.info(f"**Not yet run** for {where}: " + ", ".join(explore.method_label(m) for m in missing)
            + ". Nothing is shown or estimated for them.")

st.subheader("How these numbers were made")
st.dataframe(explore.how_made(rows), hide_index=True, width="content")
with st.expander("Provenance of every row shown"):
    st.dataframe(rows[explore.PROVENANCE], hide_index=True, width="stretch")
