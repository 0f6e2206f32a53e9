"""Export: rebuild a measured configuration and download it as ONNX,
TorchScript and JSON."""
import json

import streamlit as st

from elastic import deploy, explore
from elastic.data import DATASETS
from elastic.errors import ElasticError
from elastic.ui import data, models, page, state, widgets

page.start("Export",
           "Pick a measured configuration; it is rebuilt from its stored architecture config and exported "
           "for deployment. Trained weights are used when the row's checkpoint is in the cache or ships with "
           "the app; then the ONNX file's accuracy in onnxruntime is checked against the row's.")

frame = explore.configurations(data.shown_results())
dataset, arch = widgets.pick_dataset_and_arch(state.choices())

rows = explore.select(frame, dataset=dataset, arch=arch).sort_values("test_acc", ascending=False)
if rows.empty:
    widgets.not_yet_run(dataset, [arch])
    st.stop()
by_id = {row["run_id"]: row for row in rows.to_dict("records")}
run_id = widgets.pick_one("Configuration", list(by_id), st.session_state.get("export.run_id"), key="export.pick",
                          format_func=lambda r: f"{by_id[r]['test_acc']:.2f}% · {explore.describe(by_id[r])}")
st.session_state["export.run_id"] = run_id
row = by_id[run_id]
num_classes = DATASETS.get(dataset).num_classes
try:
    net, weights = models.model(arch, num_classes, row["config"], run_id)
except ElasticError as err:
    st.error(f"This row's configuration cannot be built: {err}. Nothing to export.")
    st.stop()
trained = weights.startswith("trained")
if trained:
    st.success(f"Weights: {weights}.")
else:
    st.warning(f"Weights: {weights}. The files have this configuration's structure but not its trained "
               "accuracy, so no accuracy is shown for them. The row's own command trains it:")
    st.code(row["command"], language="bash")

cells = st.columns(4)
if trained:
    cells[0].metric("Test accuracy (as measured)", f"{row['test_acc']:.2f}%")
else:
    cells[0].metric("Test accuracy", "untrained weights",
                    help="The run's trained weights are not on this machine; fresh weights have no accuracy to show.")
for cell, key in zip(cells[1:], ("params", "macs", "memory_int8")):
    metric = explore.METRICS[key]
    cell.metric(metric.label, explore.format_quantity(row[metric.column], metric, noun=False))
meta = deploy.row_meta(row, "trained" if trained else "fresh, untrained")
safe = run_id.replace("/", "__")
st.download_button("Configuration (JSON)", json.dumps(meta, indent=2), file_name=f"{safe}.config.json",
                   mime="application/json", key="export.config", on_click="ignore",
                   help="The row's architecture config and numbers; rebuild with elastic.models.build_model.")

st.subheader("Model files")
if st.button("Build ONNX, TorchScript and JSON", key="export.build"):
    st.session_state["export.ready"] = (run_id, trained)
if st.session_state.get("export.ready") == (run_id, trained):
    files = models.export_files(arch, dataset, row["config"], run_id, json.dumps(meta, sort_keys=True))
    cells = st.columns(len(files))
    for cell, (name, blob) in zip(cells, files.items()):
        cell.download_button(f"{name} ({explore.format_bytes(len(blob))})", blob, file_name=f"{safe}-{name}",
                             key=f"export.file.{name}", on_click="ignore")
    st.caption("Both model files were run and compared with PyTorch before they were offered.")
    if trained and str(row["data_source"]).startswith("synthetic"):
        st.info("The ONNX file's test accuracy was not checked: this row was measured on synthetic images.")
    elif trained:
        try:
            check = models.onnx_check(files["model.onnx"], dataset, float(row["test_acc"]))
        except ElasticError as err:
            st.info(f"The ONNX file's test accuracy was not checked: {err}")
        else:
            (st.success if check.agrees else st.error)(f"{check}.")
