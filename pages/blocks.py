"""Block pruning: residual blocks removed one at a time, the least harmful by
measured accuracy (direct) or by a proxy order (L1, random); every step's
candidates, the removable blocks of a network, and blocks removed live from a
trained baseline."""
import streamlit as st

from elastic import explore
from elastic.ui import blocks_live, blocks_view, data, page, state, widgets

page.start("Block pruning",
           "Direct block pruning takes each removable residual block out in turn, measures the validation "
           "accuracy without it, removes the least harmful one and fine-tunes; the L1 and random orders are "
           "the proxies it is compared with. Every number below was measured by the run named with it.")

frame = data.shown_results()

choice = state.choices()
dataset, arch = widgets.pick_dataset_and_arch(choice)

live = blocks_view.live_candidates(arch, dataset)
steps = blocks_view.block_steps(frame, dataset, arch)
run = None
if live.empty:
    st.info(f"{arch} has no removable residual blocks (no block whose input is added to its output with "
            "the same shape), so block pruning does not apply. Pick a residual network such as resnet20, "
            "resnet56 or resnet50.")
elif steps.empty:
    st.info(f"**Not yet run** for {arch} on {dataset}: no block pruning rows in `{data.results_dir()}`. "
            "Nothing is shown or estimated. This command produces them (add `--data synthetic` for a demo "
            "without the dataset):")
    st.code(blocks_view.prune_command("block", arch, dataset), language="bash")
else:
    runs = blocks_view.run_order(steps)
    st.subheader("Accuracy against MACs, step by step")
    st.plotly_chart(blocks_view.trajectory_figure(steps, runs), width="stretch", config={"displaylogo": False})
    st.caption("Each marker is one greedy step (left to right: more blocks removed, fewer MACs). Solid: test "
               "accuracy after fine-tuning. Dotted: validation accuracy right after the removal, before fine-tuning "
               "(the first point is the starting network); test accuracy before fine-tuning is not measured.")
    missing = [m for m in blocks_view.METHODS if m not in set(steps["method"])]
    if missing:
        st.info(f"**Not yet run** for {arch} on {dataset}: "
                + ", ".join(explore.method_label(m) for m in missing) + ". Commands:")
        st.code("\n".join(blocks_view.prune_command(m, arch, dataset) for m in missing), language="bash")

    st.subheader("One run")
    run = widgets.pick_one("Run", runs, st.session_state.get("blocks.run"), key="blocks.pick",
                           format_func=lambda r: blocks_view.run_label(steps, r))
    st.session_state["blocks.run"] = run
    run_steps = steps[steps["run"] == run]
    method = run_steps["method"].iloc[0]
    table = blocks_view.steps_table(run_steps)
    last = table.iloc[-1]
    cells = st.columns(4)
    cells[0].metric("Blocks removed", f"{int(last['step'])}")
    cells[1].metric("Test accuracy after the last step", f"{last['test acc (%)']:.2f}%",
                    f"{last['test acc (%)'] - table.iloc[0]['test acc (%)']:+.2f} pts vs the baseline (step 0)")
    cells[2].metric("MACs kept", f"{last['MACs kept']:.1%}")
    cells[3].metric("Parameters kept", f"{last['params kept']:.1%}")
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "MACs kept": st.column_config.NumberColumn(format="percent"),
        "params kept": st.column_config.NumberColumn(format="percent"),
        "MACs (M)": st.column_config.NumberColumn(format="%.2f"),
        "params (K)": st.column_config.NumberColumn(format="%.1f")})
    if (run_steps["data_source"] == "synthetic").any():
        st.warning("This run used synthetic images: its accuracies say nothing about real data.")

    grid = blocks_view.candidate_grid(run_steps)
    if not grid.steps:
        st.info("This run removed no block: its budget was already met by the starting network.")
    elif grid.scored:
        st.markdown(f"**What each step saw**: {blocks_view.SCORE_NAMES[method]} for every remaining candidate; "
                    "blank once a block is gone; the block removed at each step is ringed.")
        st.plotly_chart(blocks_view.heatmap_figure(grid, method), width="stretch", config={"displaylogo": False})
    else:
        why = "in a random order, so no candidate was scored" if method == "block-random" else "with no scores recorded"
        st.info(f"This run removed blocks {why}. Removal order: " + " → ".join(grid.chosen) + ".")
    with st.expander("Provenance of this run"):
        st.dataframe(run_steps[explore.PROVENANCE], hide_index=True, width="stretch")

if not live.empty:
    st.subheader(f"Removable blocks of {arch} (computed live, no training)")
    # Where the chosen run removed each block (its last step lists every removal in order).
    order = {} if run is None else {name: i + 1 for i, name in enumerate(run_steps["removed"].iloc[-1])}
    cells = st.columns(3)
    cells[0].metric("Removable blocks", f"{len(live)}")
    cells[1].metric("Their share of the MACs", f"{live['MACs share'].sum():.1%}")
    cells[2].metric("Their share of the parameters", f"{live['params share'].sum():.1%}")
    shown = live.assign(**{"removed at step": [str(order.get(b, "stays")) for b in live["block"]]}) if order else live
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "MACs share": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
        "params share": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
        "MACs (M)": st.column_config.NumberColumn(format="%.2f"),
        "params (K)": st.column_config.NumberColumn(format="%.1f")})
    st.caption("A candidate is a residual block whose input is added to its output with the same shape "
               "(`elastic.methods.blocks.candidate_blocks`); the first block of each stage changes width or "
               "resolution and stays. Shares are of the unpruned network (`elastic.profile.profile_model`)"
               + ("; 'removed at step' is the chosen run's order." if order else "."))

if not live.empty:
    blocks_live.show(arch, dataset, steps)
