"""Device presets (devices.json) and whether a configuration fits one."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from elastic.explore.units import format_bytes

DEVICES_FILE = Path(__file__).resolve().parent.parent / "devices.json"



@dataclass(frozen=True)
class Device:
    """A deployment target. memory_bytes is SRAM (microcontrollers) or RAM
    (boards, shared with the operating system); flash_bytes holds the weights
    (None where weights live on a card or disk that is never the limit)."""
    key: str
    name: str
    kind: str
    memory_bytes: int
    flash_bytes: int | None
    notes: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Fit:
    precision: str
    memory_needed: float       # weights + peak activations at this precision
    memory_limit: int
    weights_needed: float      # weight bytes at this precision
    flash_limit: int | None

    @property
    def memory_ok(self) -> bool:
        return self.memory_needed <= self.memory_limit

    @property
    def flash_ok(self) -> bool:
        return self.flash_limit is None or self.weights_needed <= self.flash_limit

    @property
    def fits(self) -> bool:
        return self.memory_ok and self.flash_ok

    def explain(self) -> str:
        """'fits: peak 310 KB <= 512 KB SRAM, weights 266 KB <= 2 MB flash'."""
        mem = (f"peak {format_bytes(self.memory_needed)} {'≤' if self.memory_ok else '>'} "
               f"{format_bytes(self.memory_limit)} memory")
        if self.flash_limit is None:
            flash = f"weights {format_bytes(self.weights_needed)} (no flash limit)"
        else:
            flash = (f"weights {format_bytes(self.weights_needed)} {'≤' if self.flash_ok else '>'} "
                     f"{format_bytes(self.flash_limit)} flash")
        return f"{'fits' if self.fits else 'does not fit'}: {mem}, {flash}"


def device_fit(row: dict[str, Any], device: Device) -> dict[str, Fit]:
    """Whether a configuration fits `device` at int8 and at fp32: peak memory
    (weights + live activations, the conservative case of weights held in RAM)
    against memory, weight bytes against flash."""
    fp32_weights = float(row["weight_bytes"])
    return {
        "int8": Fit("int8", float(row["peak_mem_int8"]), device.memory_bytes, fp32_weights / 4,
                    device.flash_bytes),
        "fp32": Fit("fp32", float(row["peak_mem_fp32"]), device.memory_bytes, fp32_weights,
                    device.flash_bytes),
    }


def parse_devices(data: dict[str, Any]) -> list[Device]:
    """Device presets from the JSON structure of devices.json; raises ValueError
    naming the bad entry."""
    devices = []
    for i, entry in enumerate(data.get("devices", [])):
        try:
            flash = entry.get("flash_bytes")
            device = Device(str(entry["key"]), str(entry["name"]), str(entry["kind"]),
                            int(entry["memory_bytes"]), None if flash is None else int(flash),
                            str(entry.get("notes", "")), tuple(str(s) for s in entry["sources"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"device entry {i} is malformed ({err!r})") from None
        if device.memory_bytes <= 0 or not device.sources:
            raise ValueError(f"device {device.key!r} needs a positive memory size and a source")
        devices.append(device)
    keys = [d.key for d in devices]
    if len(set(keys)) != len(keys):
        raise ValueError("device keys must be unique")
    return devices


def load_devices(path: Path = DEVICES_FILE) -> list[Device]:
    return parse_devices(json.loads(Path(path).read_text()))
