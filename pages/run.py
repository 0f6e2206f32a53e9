"""Run it: plan a pruned network instantly (dry run), then prune the trained
baseline by that plan and fine-tune it briefly on a subset in the background."""
import streamlit as st

from elastic import explore
from elastic.errors import ElasticError
from elastic.ui import figures, jobs, models, page, state, widgets

page.start("Run it",
           "A dry run plans the pruned network (instant, no training); a quick run prunes the shipped trained "
           "baseline by that plan and fine-tunes it on a small subset in the background. Quick runs show "
           "what a minute of fine-tuning recovers; they are not written to the results tables.")

choice = state.choices()
dataset, arch = widgets.pick_dataset_and_arch(choice)

st.subheader("1. Dry run")
left, right = st.columns([1.4, 2])
mode = left.radio("Mode", ["none", *explore.MODES], index=2, horizontal=True, key="run.mode",
                  format_func=lambda m: "unpruned" if m == "none" else m)
target = right.slider("Keep this fraction of the mode's metric", 0.1, 1.0, 0.5, 0.05, key="run.target",
                      disabled=mode == "none")
what = f"{arch}, unpruned"
if mode != "none":
    try:
        plan = models.plan(arch, dataset, mode, target)
    except ElasticError as err:
        st.warning(str(err))
        st.stop()
    what = f"{arch}, {mode} plan keeping {target:g}"
    cells = st.columns(3)
    for cell, key, label in zip(cells, ("params", "macs", "memory"), ("Parameters", "MACs", "Memory")):
        cell.metric(label, explore.format_quantity(plan[key], explore.METRICS[key], noun=False),
                    f"{plan['achieved'][key]:.0%} of the unpruned network", delta_color="off", delta_arrow="off",
                    help="Memory: weights + output activation of every layer, summed (fp32), as MA counts it."
                    if key == "memory" else None)
    st.plotly_chart(figures.plan_figure(models.kept_table({mode: plan})), width="stretch",
                    config={"displaylogo": False})

st.subheader("2. Quick run")
start_id = jobs.trained_start(arch, dataset)
if start_id is None:
    st.warning(f"No trained {arch} baseline on {dataset} is on disk, so a quick run trains from scratch: expect "
               "an accuracy near chance after this little training. Train the baseline first: "
               f"`{explore.run_commands(dataset, arch)[0]}`.")
else:
    st.caption(f"Starts from the trained baseline `{start_id}`, pruned by the plan above (its filters with the "
               "largest L1 norm kept); its batch-norm statistics are recomputed on the training images, then it "
               "is fine-tuned.")
cells = st.columns(3)
images = cells[0].number_input("Training images", 200, 10000, 2000, 200, key="run.images")
epochs = cells[1].number_input("Epochs", 1, 5, 1, key="run.epochs")
synthetic = cells[2].toggle("Synthetic images", key="run.synthetic",
                            help="Off: the dataset if it is on disk, else synthetic images (said so below). "
                                 "Synthetic images always train from scratch.")
if st.button("Start the quick run", type="primary", key="run.start"):
    try:
        jobs.start(jobs.QuickRun(arch, dataset, mode, float(target), what, int(images), int(epochs),
                                 synthetic=synthetic))
    except jobs.AlreadyRunning as err:
        st.warning(f"Not started: {err}.")
job = jobs.latest()


@st.fragment(run_every=0.5)
def watch(job: jobs.Job) -> None:
    if not job.running:
        st.rerun()
    status = job.status
    p = status.progress
    detail = f", epoch {p.epoch}/{p.epochs}, step {p.step}/{p.steps}, loss {p.loss:.3f}" if p else ""
    st.progress(job.status.fraction(), text=f"{job.run.what}: {status.phase}{detail}")


if job is not None and job.running:
    watch(job)
elif job is not None:
    error = job.future.exception()
    if error is not None:
        st.error(f"The quick run of {job.run.what} failed: {error}")
    else:
        result = job.future.result()
        if result.fallback:
            st.warning(f"{result.run.dataset} is not on disk, so this run used **synthetic images** "
                       f"(the accuracy says nothing about real data). {result.fallback}")
        elif result.data_source == "synthetic":
            st.info("This run used **synthetic images**, as asked.")
        with st.container(border=True, key="run-result"):
            st.markdown(f"**Last quick run: {result.run.what}** on {result.run.dataset}: {result.start}, for "
                        f"{explore.epochs_text(result.run.epochs)} on {result.train_images:,} images in "
                        f"{result.seconds:.1f} s.")
            cells = st.columns(4)
            cells[0].metric("Validation accuracy", f"{result.val_acc:.2f}%",
                            f"{result.val_acc - result.val_before:+.2f} pts by training",
                            help=f"On up to {jobs.EVAL_IMAGES:,} images held out of the training split; "
                                 f"before training: {result.val_before:.2f}%.")
            base = result.baseline_test_acc
            cells[1].metric(f"Test accuracy ({result.test_images:,} images)", f"{result.test_acc:.2f}%",
                            None if base is None else f"{result.test_acc - base:+.2f} pts vs the baseline",
                            help=None if base is None else f"The unpruned baseline on the same images: {base:.2f}%.")
            cells[2].metric("Parameters", explore.format_quantity(result.params, explore.METRICS["params"]))
            cells[3].metric("MACs", explore.format_quantity(result.macs, explore.METRICS["macs"]))
            st.caption(f"data: {result.data_source}")
            st.plotly_chart(figures.quick_run_figure(result.losses, result.history, result.val_before),
                            width="stretch", config={"displaylogo": False})
