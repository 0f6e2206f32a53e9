"""The logic behind the explorer, pure: result tables (as
`elastic.results.load_all` returns them) go in, tables, rows and text come out.
No Streamlit, no torch, so the first page loads fast and every rule is tested
on its own. One module a concern; the pages read them through this package:

    units     metrics, their units and formatting, the budget slider's scale, efficiency
    table     the results prepared for exploring: selections, labels, how each row was made
    budget    Pareto fronts, the best configuration under a budget, reductions against the baseline
    devices   device presets and whether a configuration fits one
    claims    the papers' claims next to the measured rows
    links     the user's choices, the URL that shares them, a link's bad values
"""
from __future__ import annotations

from elastic.explore.units import (INEFFICIENT_BELOW, METRICS, NOT_MEASURED, PLOTTED, as_shown, axis_title,
                                   choose_unit, efficiency, format_bytes, format_quantity,
                                   Metric, parse_number, plain_number, plotted,
                                   present, slider_spec, SliderSpec, Unit)
from elastic.explore.table import (ALL_ARCHS, GRID_DATASETS, MODE_METRIC, PROVENANCE, UNRECORDED, archs,
                                   configurations, data_kind, datasets, describe,
                                   epochs_text, has_modes, how_made, markdown, measured_table, method_label,
                                   missing_methods, not_applicable, prepare, run_commands,
                                   schedule_of, schedules, select, stage_word,
                                   unpruned)
from elastic.explore.budget import (BUDGET_TOLERANCE, baseline_for, best_under_budget, front_indices, pareto_front,
                                    Pick, reductions)
from elastic.explore.devices import (DEVICES_FILE, Device, device_fit, Fit, load_devices, parse_devices)
from elastic.explore.claims import (CLAIMS_FILE, load_claims, measured_summary)
from elastic.explore.links import (MODES, PRECISIONS, Choices, query_problems)

__all__ = ["INEFFICIENT_BELOW", "METRICS", "NOT_MEASURED", "PLOTTED", "as_shown", "axis_title", "choose_unit",
           "efficiency",
           "format_bytes", "format_quantity", "Metric", "parse_number", "plain_number", "plotted",
           "present", "slider_spec", "SliderSpec", "Unit", "ALL_ARCHS", "GRID_DATASETS", "MODE_METRIC",
           "PROVENANCE", "UNRECORDED", "archs", "configurations", "data_kind", "datasets", "describe",
           "epochs_text", "has_modes", "how_made", "markdown", "measured_table", "method_label", "missing_methods",
           "not_applicable", "prepare", "run_commands", "schedule_of", "schedules", "select", "stage_word", "unpruned",
           "BUDGET_TOLERANCE", "baseline_for", "best_under_budget", "front_indices", "pareto_front",
           "Pick", "reductions", "DEVICES_FILE", "Device", "device_fit", "Fit", "load_devices",
           "parse_devices", "CLAIMS_FILE", "load_claims", "measured_summary", "MODES", "PRECISIONS",
           "Choices", "query_problems"]
