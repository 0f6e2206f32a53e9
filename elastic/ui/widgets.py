"""Widgets that return typed choices. Each takes the current choice and returns
the new one; the caller stores it (elastic.ui.state). A widget's key holds its
options, so new options (another dataset's architectures) make a new widget that
starts from the stored choice rather than keep a stale selection; its default
always comes from the stored choice, so leaving a page and coming back restores
the view."""
from __future__ import annotations

import zlib
from typing import Any, Callable, Sequence, TypeVar

import streamlit as st

from elastic import catalog, explore
from elastic.explore import Device, Metric, SliderSpec
from elastic.ui import state

T = TypeVar("T")


def pick_one(label: str, options: Sequence[T], current: T | None, *, key: str,
             format_func: Callable[[T], str] = str, help: str | None = None, where: Any = st) -> T:
    """A selectbox starting at `current` (or the first option)."""
    options = list(options)
    index = options.index(current) if current in options else 0
    return where.selectbox(label, options, index=index, key=_keyed(key, options), format_func=format_func,
                           help=help)


def pick_many(label: str, options: Sequence[T], current: Sequence[T] | None, *, key: str,
              format_func: Callable[[T], str] = str, help: str | None = None, pills: bool = False,
              where: Any = st) -> tuple[T, ...]:
    """A multiselect (or, with `pills`, a row of toggles that shows every label
    in full) starting at `current` (None: every option)."""
    options = list(options)
    default = options if current is None else [o for o in options if o in current]
    if pills:
        chosen = where.pills(label, options, selection_mode="multi", default=default, key=_keyed(key, options),
                             format_func=format_func, help=help)
    else:
        chosen = where.multiselect(label, options, default=default, key=_keyed(key, options),
                                   format_func=format_func, help=help)
    return tuple(chosen)


def _keyed(key: str, options: Sequence[Any]) -> str:
    return f"{key}:{zlib.crc32(repr(list(options)).encode()):08x}"


def pick_dataset(options: Sequence[str], current: str, *, key: str = "pick.dataset", where: Any = st) -> str:
    return pick_one("Dataset", options, current, key=key, where=where)


def pick_arch(options: Sequence[str], current: str, *, allow_all: bool, key: str = "pick.arch",
              where: Any = st) -> str:
    """An architecture, or (if allowed) every architecture at once."""
    choices = ([explore.ALL_ARCHS] if allow_all and len(options) > 1 else []) + list(options)
    start = current if current in choices else (options[0] if options else None)
    return pick_one("Architecture", choices, start, key=key, where=where,
                    format_func=lambda a: "All architectures" if a == explore.ALL_ARCHS else a)


def pick_metric(current: str, *, label: str = "Budget on", key: str = "pick.metric", where: Any = st) -> Metric:
    key_ = pick_one(label, list(explore.METRICS), current, key=key, where=where,
                    format_func=lambda k: explore.METRICS[k].label)
    return explore.METRICS[key_]


def budget_slider(spec: SliderSpec, metric: Metric, budget: float | None, *, where: Any = st) -> float | None:
    """The budget in base units, or None at the top of the slider (no limit: it
    stays so when another architecture moves the top). The slider counts in
    `spec.unit`; its key holds the range, so a new range starts a fresh slider
    at the stored budget instead of a stale position."""
    value = spec.high if budget is None else spec.from_base(budget)
    key = f"budget:{metric.key}:{spec.unit.name}:{spec.high:g}:{spec.step:g}"
    chosen = where.slider(f"Budget ({spec.unit.name})", min_value=spec.low, max_value=spec.high, value=value,
                          step=spec.step, format=spec.format, key=key,
                          help="Configurations above the budget are out; of those left, the one with the best "
                               "validation accuracy is chosen. "
                               "At the top: no limit.")
    return None if chosen >= spec.high else spec.to_base(chosen)


def pick_device(devices: Sequence[Device], current: str, *, key: str = "pick.device",
                where: Any = st) -> Device | None:
    by_key = {d.key: d for d in devices}
    chosen = pick_one("Device", [""] + list(by_key), current, key=key, where=where,
                      format_func=lambda k: by_key[k].name if k else "No device (budget only)",
                      help="A preset sets memory and flash limits; the chosen configuration must fit them.")
    return by_key.get(chosen)


def pick_precision(current: str, *, key: str = "pick.precision", where: Any = st) -> str:
    return where.radio("Deploy at", explore.PRECISIONS, index=explore.PRECISIONS.index(current)
                       if current in explore.PRECISIONS else 0, key=key, horizontal=True,
                       help="int8: 1 byte per weight and activation; fp32: 4 bytes.")


def pick_dataset_and_arch(choice: explore.Choices) -> tuple[str, str]:
    """Sidebar pickers over every registered dataset and the architectures that
    take its images, whether or not they have results; the choice is remembered
    and shared in the URL."""
    with st.sidebar:
        dataset = pick_dataset(catalog.DATASET_NAMES, choice.dataset)
        offered = catalog.archs_for(dataset)
        link = {k: v for k, v in st.query_params.to_dict().items() if k in ("dataset", "arch")}
        for problem in explore.query_problems(link, catalog.DATASET_NAMES, offered, where=dataset):
            st.warning(problem)
        arch = pick_arch(offered, choice.arch, allow_all=False)
    state.remember(choice.update(dataset=dataset, arch=arch), share=("dataset", "arch"))
    return dataset, arch


def not_yet_run(dataset: str, archs: Sequence[str]) -> None:
    """Say that these architectures have no rows for `dataset`, with the commands
    that make them; nothing is shown or estimated in their place."""
    st.info(f"**Not yet run:** {', '.join(archs)} on {dataset}. Nothing is shown or estimated for "
            f"{'it' if len(archs) == 1 else 'them'}. These commands measure "
            f"{'it' if len(archs) == 1 else 'them'} (a baseline first, then every method):")
    st.code("\n".join(c for arch in archs for c in explore.run_commands(dataset, arch)), language="bash")
