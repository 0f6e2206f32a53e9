"""Layer complexity: where the parameters, MACs and memory of a network sit, and
which layers the complexity-driven modes (PA, FA, MA) prune at a budget."""
import streamlit as st

from elastic import explore
from elastic.data import DATASETS
from elastic.models import ARCHS
from elastic.errors import ElasticError
from elastic.ui import figures, models, page, state, widgets

NAMES = {"params": "parameters", "macs": "MACs", "memory": "memory", "peak_memory": "peak memory"}

page.start("Layer complexity",
           "Each convolution's and linear layer's share of the parameters, MACs and memory (weights + output "
           "activation) of the unpruned network, and the filters each complexity-driven mode keeps at the budget. "
           "Computed live from the model, no training.")

choice = state.choices()
for problem in explore.query_problems(st.query_params.to_dict(), DATASETS.names(), ARCHS.names()):
    st.warning(problem)
dataset, arch = widgets.pick_dataset_and_arch(choice)

layers, totals = models.layer_table(arch, dataset)
cells = st.columns(4)
for cell, key in zip(cells, ("params", "macs", "memory", "memory_int8")):
    metric = explore.METRICS[key]
    cell.metric(metric.label, explore.format_quantity(totals[metric.column], metric, noun=False))
shown = layers[layers["kind"].isin(["conv", "linear"])]
st.plotly_chart(figures.layer_shares_figure(shown), width="stretch", config={"displaylogo": False})
with st.expander("Every layer"):
    st.dataframe(layers, hide_index=True, width="stretch")

st.subheader("What PA, FA and MA prune")
target = st.slider("Keep this fraction of the mode's metric (PA: parameters, FA: FLOPs, MA: memory)",
                   0.1, 1.0, models.DEFAULT_TARGET, 0.05, key="layers.target")
plans, failed = {}, {}
for mode in explore.MODES:
    try:
        plans[mode] = models.plan(arch, dataset, mode, target)
    except ElasticError as err:
        failed[mode] = str(err)
for mode, message in failed.items():
    st.warning(f"{mode}: {message}")
if plans:
    cells = st.columns(len(plans))
    for cell, (mode, p) in zip(cells, plans.items()):
        achieved, metric = p["achieved"], explore.MODE_METRIC[mode]
        cell.metric(f"{mode} keeps", f"{achieved[metric]:.0%} of {NAMES[metric]}")
        cell.caption("Kept: " + " · ".join(f"{NAMES.get(k, k)} {v:.0%}" for k, v in achieved.items()))
    st.plotly_chart(figures.plan_figure(models.kept_table(plans)), width="stretch",
                    config={"displaylogo": False})
