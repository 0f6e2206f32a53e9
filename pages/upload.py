"""Check a file: upload a checkpoint, training resume file, elastic checkpoint or
export; the page says which it is, what it holds and (for a network) measures
its accuracy on test images. Checked in a temporary folder, loaded as tensors
only, never kept after the session."""
import streamlit as st

from elastic.checkpoints import MAX_UPLOAD_BYTES
from elastic.errors import ElasticError
from elastic.ui import page, upload

page.start("Check a checkpoint",
           "Upload a file the project writes: a model checkpoint (`train`, `prune`), a training resume file "
           "(`*.resume.pt`), an elastic checkpoint (`grow`) or an export (`model.pt`, `model.onnx`). The page "
           "says which one it is and what it holds. Checkpoints are loaded as tensors only (no code in them is "
           "run). Nothing is kept after your session.")

uploaded = st.file_uploader(f"A file Elastic wrote (at most {MAX_UPLOAD_BYTES // 2 ** 20} MB)",
                            type=upload.FILE_TYPES, max_upload_size=MAX_UPLOAD_BYTES // 2 ** 20, key="upload.file")
if uploaded is None:
    st.info("No file uploaded yet. Any of the four kinds above works; the page tells which one it is.")
    st.stop()
try:
    report = upload.check(uploaded)
except ElasticError as err:
    st.error(f"Cannot use this file: {err}")
    st.stop()

st.success(f"`{report.name}` is {report.summary}.")
upload.show(report)

datasets = upload.measurable(report)
if not datasets:
    st.stop()
dataset = datasets[0] if len(datasets) == 1 else st.selectbox(
    "Dataset to measure on", datasets, key="upload.dataset", help="The file does not say which dataset it is for.")
if st.button(f"Measure accuracy on {upload.ACCURACY_IMAGES} {dataset} test images", key="upload.accuracy"):
    try:
        with st.spinner("Loading test images and evaluating..."):
            found, images, source = upload.accuracy(report, dataset)
    except ElasticError as err:
        st.warning(f"Accuracy not measured: {err}")
    else:
        cells = st.columns(len(found))
        for cell, (what, acc) in zip(cells, found):
            cell.metric(f"Test accuracy, {what}" if what else "Test accuracy", f"{acc:.2f}%",
                        help=f"Measured now on {images} test images (a fixed subset) from {source}.")
