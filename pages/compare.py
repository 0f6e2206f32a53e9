"""Compare: every method's front for one architecture and dataset, and what each
method's paper claims next to what we measured."""
import math

import streamlit as st

from elastic import explore
from elastic.methods import METHODS, applies
from elastic.ui import data, figures, page, state, widgets

page.start("Compare with the papers",
           "Our measurements (left) are rows of the results tables. The papers' claims (right) are quoted "
           "from the papers, under their own set-ups: they are not measured here and are never plotted.")

frame = explore.configurations(data.shown_results())

choice = state.choices()
dataset, arch = widgets.pick_dataset_and_arch(choice)
metric = widgets.pick_metric(choice.metric, label="Accuracy against", key="compare.metric")
state.remember(state.choices().update(metric=metric.key, budget=choice.budget
                                      if metric.key == choice.metric else None), share=("dataset", "arch", "metric"))

rows = explore.select(frame, dataset=dataset, arch=arch)
if rows.empty:
    widgets.not_yet_run(dataset, [arch])
    st.stop()
st.plotly_chart(figures.tradeoff_figure(rows, metric, height=460), width="stretch",
                config={"displaylogo": False})

measured = {r["method"]: r for r in explore.measured_summary(frame, rows).to_dict("records")}
claims = {c["method"]: c for c in data.claims()}
st.subheader(f"Measured here ({arch}, {dataset}) and claimed by the papers")
for name in METHODS.names():
    spec = METHODS.get(name)
    with st.container(border=True):
        st.markdown(f"**{spec.label}** — {spec.summary}")
        ours, theirs = st.columns(2)
        ours.markdown("*Measured here*")
        m = measured.get(name)
        if m is None:
            ours.markdown("Not yet run." if applies(name, arch)
                          else f"Does not apply: {arch} has no removable residual blocks.")
        else:
            text = f"{m['rows']} configuration(s), best test accuracy **{m['best_test_acc']:.2f}%**."
            if name != "baseline":
                if math.isnan(m["params_reduction"]):
                    text += " No configuration within 1 point of its baseline (or no baseline row)."
                else:
                    text += (f" Within 1 point of the baseline: up to **{m['params_reduction']:.0%}** fewer "
                             f"parameters, **{m['macs_reduction']:.0%}** fewer MACs.")
            ours.markdown(text)
        theirs.markdown("*Claimed by the paper (not measured here)*")
        claim = claims.get(name)
        if claim is None:
            theirs.markdown("No paper claim for this method.")
            continue
        theirs.markdown(claim["claim"])
        numbers = [n for n in claim.get("numbers", []) if n["arch"] in ("", arch) and n["dataset"] in ("", dataset)]
        for n in numbers:
            theirs.markdown(f"- claimed {n['what']}: **{n['value']:g}**")
        theirs.caption(f"{claim['paper']}. Source: {claim['source']}")
