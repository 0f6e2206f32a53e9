"""Elastic networks: one shipped model, several nested widths. Switch the level
live and see its accuracy on real test images, its cost, its latency and what
the switch itself costs."""
import streamlit as st

from elastic import explore, identity
from elastic.errors import ElasticError
from elastic.explore import METRICS
from elastic.ui import data, elastic_view, page, state, widgets

page.start("Elastic networks",
           "Prune-and-grow keeps several nested widths in one model: each level uses the leading channels of "
           "the shared weights, with its own batch norms and head. Switching a level copies no weights. "
           "Everything on this page is measured now, on this server, from the shipped checkpoint; the chart at "
           "the bottom shows what the training runs recorded.")

frame = data.shown_results()

folder = elastic_view.checkpoints_dir()
paths = elastic_view.find_checkpoints(folder)
if not paths:
    st.info(f"**No elastic checkpoint shipped yet** in `{folder}`. This command trains one from the trained "
            "baseline and ships it here (add `--data synthetic` for a demo without the dataset):")
    st.code(elastic_view.grow_command(), language="bash")
    st.stop()

choice = state.choices()
by_name = {p.name: p for p in paths}
wanted = st.session_state.get("elastic.checkpoint") or next(
    (p.name for p in paths if p.name.startswith(f"{choice.dataset}__{choice.arch}__")), None)
name = widgets.pick_one("Elastic checkpoint", list(by_name), wanted, key="elastic.pick",
                        format_func=lambda n: elastic_view.checkpoint_label(by_name[n]))
st.session_state["elastic.checkpoint"] = name
path = by_name[name]
mtime = elastic_view.stamp(path)
try:
    model = elastic_view.elastic_model(str(path), mtime)
    dataset = elastic_view.dataset_of(model, path)
except ElasticError as err:
    st.error(f"Cannot use `{path}`: {err}")
    st.stop()
arch, synthetic = model.arch, elastic_view.trained_on_synthetic(model)
state.remember(choice.update(dataset=dataset, arch=arch), share=("dataset", "arch"))
full = model.num_levels - 1

level = st.select_slider(
    "Level", options=list(range(model.num_levels)), value=full, key=f"elastic.level:{name}:{model.num_levels}",
    format_func=lambda k: f"{k} · {model.widths[k]:.1%} width" + (" (core)" if k == 0 else " (full)" if k == full
                                                                  else ""),
    help="Level 0 is the smallest (the core); the last is the full network.")

live = elastic_view.live_images(dataset, synthetic)
if live.fallback:
    st.warning(f"**{dataset} is not on disk**, so the accuracy below is measured on **synthetic images** and says "
               f"nothing about real data. {live.fallback}")
elif synthetic:
    st.info("This checkpoint was trained on **synthetic images**, so it is evaluated on synthetic test images: "
            "the accuracy says nothing about real data.")
acc, predicted = elastic_view.level_accuracy(str(path), mtime, level, live, dataset)
full_acc, _ = elastic_view.level_accuracy(str(path), mtime, full, live, dataset)
cost = elastic_view.level_profile(str(path), mtime, level)
full_cost = elastic_view.level_profile(str(path), mtime, full)
timing = elastic_view.level_timing(str(path), mtime, level)

top, bottom = st.columns(3), st.columns(3)
top[0].metric(f"Test accuracy ({len(live.images):,} images)", f"{acc:.2f}%", f"{acc - full_acc:+.2f} pts vs full width" if level != full else None,
              help=f"On {len(live.images):,} test images (a fixed subset), measured on this server.")
for cell, key in zip(top[1:], ("macs", "params")):
    metric = METRICS[key]
    cell.metric(metric.label, explore.format_quantity(cost[metric.column], metric, noun=False),
                f"{cost[metric.column] / full_cost[metric.column]:.0%} of full width", delta_color="off",
                delta_arrow="off")
bottom[0].metric("Latency (batch 1)", f"{timing['extracted_ms']:.2f} ms",
                 f"{timing['extracted_p10_ms']:.2f}–{timing['extracted_p90_ms']:.2f} ms (p10–p90)", delta_color="off",
                 delta_arrow="off",
                 help=f"Median of {timing['repeats']} batch-1 CPU passes of this level extracted as a standalone "
                      "network, in 5 rounds interleaved with the other levels.")
bottom[1].metric("Switch time", f"{timing['switch_us']:.0f} µs",
                 help="Preparing this level's weight views from scratch; no weights are copied.")
bottom[2].metric(METRICS["memory_int8"].label, explore.format_bytes(cost["peak_mem_int8"]),
                 help="Weights + peak activations at int8, batch 1.")
st.caption(f"Measured on this server ({timing['host']}, {timing['threads']} thread{'s' if timing['threads'] != 1 else ''}): run inside the elastic "
           f"model the level takes {timing['in_place_ms']:.2f} ms; once its views are prepared a switch costs "
           f"{timing['switch_cached_us']:.2f} µs. Peak memory at fp32: {explore.format_bytes(cost['peak_mem_fp32'])}. "
           f"Test images: {live.source}.")
recorded = frame[frame["run_id"] == identity.level(model.meta.get("run", ""), level)]
if len(recorded):
    row = recorded.iloc[0]
    st.caption(f"Recorded by the training run on the whole test split: {row['test_acc']:.2f}% "
               f"(`{row['run_id']}`).")

st.markdown(f"**{len(predicted)} test images at level {level}**: predicted class, ✓ or ✗, and the true class.")
shown = live.images.take(elastic_view.shown_indices(len(live.images)))
captions = []
for guess, truth in zip(predicted, shown.labels.tolist()):
    captions.append(f"{live.classes[guess]} ✓" if guess == truth
                    else f"{live.classes[guess]} ✗ (true: {live.classes[truth]})")
st.image(elastic_view.thumbnails(shown.images), caption=captions, width=96)
with st.expander(f"Channels at level {level}, per stage"):
    st.dataframe(elastic_view.stage_widths(str(path), mtime, level), hide_index=True, width="stretch",
                 column_config={"kept": st.column_config.NumberColumn("channels kept", format="percent")})

st.subheader("Accuracy per level, as the runs recorded it")
rows = elastic_view.level_rows(frame, dataset, arch)
if rows.empty:
    st.info(f"**Not yet run**: no elastic rows for {arch} on {dataset} in `{data.results_dir()}`.")
else:
    st.plotly_chart(elastic_view.levels_figure(rows, model.widths[level]), width="stretch",
                    config={"displaylogo": False})
    st.caption("Solid: prune-and-grow (smaller levels frozen while larger ones grow). Dashed: every width trained "
               "jointly. Test accuracy on the whole test split, as each run measured it.")
missing = [m for m in elastic_view.METHODS if m not in set(rows["method"])]
if missing:
    st.info("**Not yet run** for comparison: " + ", ".join(explore.method_label(m) for m in missing) + ".")
    st.code("\n".join(elastic_view.grow_command(arch, dataset, joint=m == "elastic-joint", ship=False)
                      for m in missing), language="bash")
