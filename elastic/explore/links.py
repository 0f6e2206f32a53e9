"""What the user chose, the URL that shares it, and the problems of a link's values."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping


from elastic.explore.table import ALL_ARCHS
from elastic.explore.units import METRICS, parse_number, plain_number

MODES = ("PA", "FA", "MA")
PRECISIONS = ("int8", "fp32")



@dataclass(frozen=True)
class Choices:
    """The explorer's view. Empty strings and None mean "not chosen yet": the page
    fills in defaults from the data."""
    dataset: str = ""
    arch: str = ""
    methods: tuple[str, ...] | None = None    # None: every method that has rows
    modes: tuple[str, ...] = MODES
    metric: str = "macs"
    budget: float | None = None               # in base units of `metric`; None: no limit
    device: str = ""
    precision: str = "int8"
    schedule: str = ""                        # "": the one covering the most architectures

    def to_query(self) -> dict[str, str]:
        """Query parameters for a shareable URL (only what was chosen)."""
        out = {"dataset": self.dataset, "arch": self.arch, "metric": self.metric,
               "budget": "" if self.budget is None else plain_number(self.budget),
               "methods": "" if self.methods is None else ",".join(self.methods),
               "modes": "" if self.modes == MODES else ",".join(self.modes),
               "device": self.device, "precision": "" if self.precision == "int8" else self.precision,
               "schedule": self.schedule}
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> "Choices":
        """Choices from query parameters; unknown or malformed values are ignored."""
        def items(key: str) -> tuple[str, ...] | None:
            text = params.get(key, "")
            return tuple(x for x in text.split(",") if x) or None
        metric = params.get("metric", "macs")
        modes = tuple(m for m in (items("modes") or MODES) if m in MODES) or MODES
        precision = params.get("precision", "int8")
        return cls(dataset=params.get("dataset", ""), arch=params.get("arch", ""),
                   methods=items("methods"), modes=modes,
                   metric=metric if metric in METRICS else "macs",
                   budget=_budget(params.get("budget")) if metric in METRICS else None,
                   device=params.get("device", ""),
                   precision=precision if precision in PRECISIONS else "int8",
                   schedule=params.get("schedule", ""))

    def update(self, **changes: Any) -> "Choices":
        """A copy with `changes`; a new metric forgets the budget (its units differ)."""
        if "metric" in changes and changes["metric"] != self.metric and "budget" not in changes:
            changes["budget"] = None
        return replace(self, **changes)


def _budget(text: Any) -> float | None:
    """A budget from a link: a finite number of at least 0, else None (no limit)."""
    value = parse_number(text)
    return value if value is not None and value >= 0 else None




def query_problems(params: Mapping[str, Any], datasets: Iterable[str], archs: Iterable[str], *,
                   where: str = "") -> list[str]:
    """One message per query parameter a page cannot use (it falls back to a
    default for it): a dataset outside `datasets`, an architecture outside
    `archs` (those that take the images of the dataset `where`), an unknown
    budget metric, and a budget that is not a finite number >= 0."""
    def value(key: str) -> str:
        got = params.get(key, "")
        return str(got[0] if isinstance(got, (list, tuple)) and got else got)

    datasets, archs = list(datasets), list(archs)
    problems = []
    dataset, arch, metric, budget = value("dataset"), value("arch"), value("metric"), value("budget")
    if dataset and dataset not in datasets:
        problems.append(f"Dataset {dataset!r} from the link is not available here; choices: {', '.join(datasets)}.")
    if arch and arch not in archs and arch != ALL_ARCHS:
        takes = f" for {where}" if where else ""
        problems.append(f"Architecture {arch!r} from the link is not available{takes}; showing {archs[0]} "
                        f"instead. Choices: {', '.join(archs)}." if archs else
                        f"Architecture {arch!r} from the link is not available{takes}.")
    if metric and metric not in METRICS:
        problems.append(f"Unknown budget metric {metric!r} in the link; known: {', '.join(METRICS)}.")
    if budget and _budget(budget) is None:
        problems.append(f"The budget {budget!r} in the link is not a number of at least 0; it is ignored.")
    return problems
