"""Check a checkpoint: upload your own checkpoint of a supported architecture; it
is validated (size, format, weights only, architecture, class count) in a
temporary folder and profiled, and its accuracy can be measured on test images."""
import streamlit as st

from elastic.checks import MAX_UPLOAD_BYTES
from elastic.errors import ElasticError
from elastic.ui import page, state, upload, widgets

page.start("Check a checkpoint",
           "Upload a checkpoint saved by `python -m elastic train`, `prune` or `elastic.runs.save_model`. "
           "It is loaded as tensors only (no code in it is run), checked against the architecture and dataset "
           "you pick, and profiled. Nothing is kept after your session.")

choice = state.choices()
dataset, arch = widgets.pick_dataset_and_arch(choice)

uploaded = st.file_uploader(f"Checkpoint of a {arch} for {dataset} (at most {MAX_UPLOAD_BYTES // 2 ** 20} MB)",
                            type=["pt", "pth", "ckpt"], max_upload_size=MAX_UPLOAD_BYTES // 2 ** 20,
                            key="upload.file")
if uploaded is None:
    st.info("No checkpoint uploaded yet. Pick the architecture and dataset it was trained for, then upload it.")
    st.stop()
try:
    checked = upload.check(uploaded, arch, dataset)
except ElasticError as err:
    st.error(f"Cannot use this checkpoint: {err}")
    st.stop()

st.success(f"`{checked.name}` is a valid {arch} checkpoint for {dataset}.")
upload.show(checked)
if st.button(f"Measure accuracy on {upload.ACCURACY_IMAGES} test images", key="upload.accuracy"):
    try:
        with st.spinner("Loading test images and evaluating..."):
            acc, images, source = upload.accuracy(checked)
    except ElasticError as err:
        st.warning(f"Accuracy not measured: {err}")
    else:
        st.metric("Test accuracy", f"{acc:.2f}%", help=f"On {images} test images (a fixed subset) from {source}.")
