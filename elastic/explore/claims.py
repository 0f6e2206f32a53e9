"""The papers' claims (claims.json) next to what this project measured."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from elastic.explore.budget import baseline_for, reductions
from elastic.explore.table import method_label

CLAIMS_FILE = Path(__file__).resolve().parent.parent / "claims.json"



def load_claims(path: Path = CLAIMS_FILE) -> list[dict[str, Any]]:
    """The papers' headline claims (text, optional numbers, source), as written
    in claims.json. These are the papers' statements, never our measurements."""
    claims = json.loads(Path(path).read_text())["claims"]
    for claim in claims:
        if not claim.get("claim") or not claim.get("source"):
            raise ValueError(f"claim for {claim.get('method')!r} needs a claim text and a source")
    return claims


def measured_summary(frame: pd.DataFrame, rows: pd.DataFrame, max_drop: float = 1.0) -> pd.DataFrame:
    """Per method, what we measured: row count, best test accuracy, and the
    largest parameter and MAC reductions (against each row's baseline) among rows
    that lose at most `max_drop` accuracy points."""
    out = []
    for method, group in rows.groupby("method", sort=False):
        best_params = best_macs = math.nan
        for row in group.to_dict("records"):
            base = baseline_for(frame, row)
            if base is None or row["run_id"] == base["run_id"]:
                continue
            red = reductions(row, base)
            if red["accuracy"] >= -max_drop:
                best_params = np.nanmax([best_params, red["params"]])
                best_macs = np.nanmax([best_macs, red["macs"]])
        out.append({"method": method, "label": method_label(method), "rows": len(group),
                    "best_test_acc": group["test_acc"].max(),
                    "params_reduction": best_params, "macs_reduction": best_macs})
    return pd.DataFrame(out, columns=["method", "label", "rows", "best_test_acc",
                                      "params_reduction", "macs_reduction"])
