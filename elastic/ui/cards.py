"""Cards that explain a choice: which configuration, what it saves against the
baseline, whether it fits the device, and how its numbers were made."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from elastic import explore
from elastic.explore import METRICS, Pick


def best_card(pick: Pick, frame: pd.DataFrame) -> None:
    """The chosen configuration under the budget, or why there is none."""
    with st.container(border=True, key="best-card"):
        budget = (f"under {explore.format_quantity(pick.budget, pick.metric)}" if math.isfinite(pick.budget)
                  else "with no budget limit")
        device = f" on the {pick.device.name} at {pick.precision}" if pick.device else ""
        if pick.row is None:
            st.markdown(f"**Best {budget}{device}:** nothing to choose.")
            st.warning(pick.reason)
            return
        row = pick.row
        st.markdown(f"**Best {budget}{device}:** {explore.describe(row)}  \n`{row['run_id']}`")
        baseline = explore.baseline_for(frame, row)
        _numbers(row, baseline)
        fp32, int8 = explore.format_bytes(row["peak_mem_fp32"]), explore.format_bytes(row["peak_mem_int8"])
        st.markdown(f"Peak memory (weights + activations, batch 1): **{fp32}** at fp32, **{int8}** at int8. "
                    + latency_text(row, baseline, pick.metric))
        if pick.device is not None:
            for precision, fit in explore.device_fit(row, pick.device).items():
                icon = ":green[:material/check_circle:]" if fit.fits else ":red[:material/cancel:]"
                st.markdown(f"{icon} **{precision}** {fit.explain()}")
        made = " · ".join([row["label"] or "no label", explore.data_kind(row["data_source"]),
                           explore.epochs_text(row["epochs"])])
        among = f"Chosen among {pick.fitting} of {pick.considered} configurations {pick.chosen_by}"
        if pick.unmeasured:
            among += f"; {pick.metric.label}: {explore.NOT_MEASURED} for {pick.unmeasured} more"
        st.caption(f"How this number was made: {made}. {among}.")
        if row["data_source"] == "synthetic":
            st.warning("Trained on synthetic images: the accuracy says nothing about real data.")
        with st.expander("Provenance"):
            provenance(row)


def _numbers(row: dict[str, Any], baseline: dict[str, Any] | None) -> None:
    """Test accuracy, parameters, MACs and memory, each against the baseline; on
    the baseline itself (or a method's row of the unpruned network) each says
    "baseline" instead of a zero change."""
    is_baseline = baseline is not None and (row["run_id"] == baseline["run_id"] or bool(row.get("unpruned")))
    red = explore.reductions(row, baseline) if baseline is not None and not is_baseline else None
    cells = st.columns(4)
    plain = {"delta_color": "off", "delta_arrow": "off"} if is_baseline else {}
    acc_delta = "baseline" if is_baseline else f"{red['accuracy']:+.2f} pts vs baseline" if red else None
    cells[0].metric("Test accuracy", f"{row['test_acc']:.2f}%", acc_delta, **plain)
    for cell, key, metric in ((cells[1], "params", METRICS["params"]), (cells[2], "macs", METRICS["macs"]),
                              (cells[3], "memory", METRICS["memory"])):
        delta = "baseline" if is_baseline else None
        if red and math.isfinite(red[key]):
            delta = f"-{red[key]:.0%} vs baseline" if red[key] >= 0 else f"+{-red[key]:.0%} vs baseline"
        cell.metric(metric.label, explore.format_quantity(row[metric.column], metric, noun=False), delta,
                    **(plain or {"delta_color": "inverse"}))
    if baseline is None:
        st.caption("No baseline row for this architecture and dataset: reductions cannot be computed.")
    elif baseline["run_id"] != row["run_id"]:
        st.caption(f"Baseline: `{baseline['run_id']}` ({baseline['test_acc']:.2f}%).")


def latency_text(row: dict[str, Any], baseline: dict[str, Any] | None, metric: explore.Metric) -> str:
    """Latency in both runtimes (the budget's runtime first when the budget is on
    latency) and, against the baseline, the speed-up each MAC cut bought."""
    first = "latency_ort" if metric.key != "latency" else "latency"
    runtimes = [(METRICS[k], name) for k, name in (("latency_ort", "onnxruntime"), ("latency", "PyTorch"))]
    runtimes.sort(key=lambda pair: pair[0].key != first)
    shown = [f"**{explore.format_quantity(row[m.column], m)}** in {name}" for m, name in runtimes
             if explore.present(row.get(m.column))]
    if not shown:
        return f"Latency: {explore.NOT_MEASURED}."
    host = str(row.get("latency_host") or "").split(";")[0]
    text = f"Latency (CPU, batch 1, one thread{', ' + host if host else ''}): " + ", ".join(shown) + "."
    main = runtimes[0][0]
    value = explore.efficiency(row, baseline, main.column)
    if value is not None:
        speedup = baseline[main.column] / row[main.column]
        text += (f" {speedup:.2f}x faster than the baseline for {baseline['macs'] / row['macs']:.2f}x fewer MACs "
                 f"in {runtimes[0][1]}: efficiency **{value:.2f}**")
        text += (" :orange[(low: this MAC cut buys little speed)]." if value < explore.INEFFICIENT_BELOW else ".")
    return text


def provenance(row: dict[str, Any]) -> None:
    """Command, seed, epochs, device, commit and date of one row. The command is
    inline code, not st.code: the card is on the first page, and st.code's
    highlighter costs the browser over half a second to load there."""
    st.markdown(f"`{row['command']}`")
    st.markdown(" · ".join(f"{name}: **{row[name] if not isinstance(row[name], float) else f'{row[name]:g}'}**"
                           for name in ("seed", "epochs", "device", "commit", "date", "seconds")))
    if row.get("data_source"):
        st.caption(f"data: {row['data_source']}")


def device_sources(device: explore.Device) -> None:
    st.caption(f"{device.notes} Sources: " + "; ".join(device.sources))
