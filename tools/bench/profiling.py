"""``torch.profiler`` tables for the benchmarks: where a step's device time goes (kernels), and where its host time
goes (operators by self CPU time), per step. One home for the scripts that profile (train, fit, enhance)."""

from __future__ import annotations

import torch


def activities(device: torch.device) -> list:
    from torch.profiler import ProfilerActivity

    return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])


def kernel_table(prof, steps: int, device: torch.device, rows: int = 25) -> dict:
    """Kernels (CUDA) or operators (CPU) by total self time over ``steps`` profiled steps: ``{ms_per_step, top}``."""
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = list(prof.key_averages())
    if device.type == "cuda":  # kernels only: operator rows repeat the time of the kernels they launch, and
        # record_function ranges (ProfilerStep#, Optimizer.step#...) the time of all the kernels inside them
        events = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA
                  and not getattr(e, "is_user_annotation", False) and "#" not in e.key
                  and not e.key.startswith("ProfilerStep")]
    events.sort(key=lambda e: getattr(e, key, 0.0), reverse=True)
    total = sum(getattr(e, key, 0.0) for e in events) or 1.0
    top = [{"name": e.key[:90], "calls": e.count, "ms_per_step": getattr(e, key, 0.0) / 1e3 / steps,
            "share": getattr(e, key, 0.0) / total} for e in events[:rows]]
    return {"ms_per_step": total / 1e3 / steps, "top": top}


def host_table(prof, steps: int, rows: int = 20) -> dict:
    """Operators by self CPU time (what the Python side pays per step, launches included)."""
    events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CPU
              and not e.key.startswith("ProfilerStep")]  # the step range holds every operator's time again
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    top = [{"name": e.key[:90], "calls": e.count, "ms_per_step": e.self_cpu_time_total / 1e3 / steps,
            "share": e.self_cpu_time_total / total} for e in events[:rows]]
    return {"ms_per_step": total / 1e3 / steps, "top": top}


def print_table(title: str, table: dict) -> None:
    print(f"{title}: {table['ms_per_step']:.2f} ms per step")
    for row in table["top"]:
        print(f"  {row['ms_per_step']:8.3f} ms {row['share']:6.1%} {row['calls']:7d}  {row['name']}")


def markdown(table: dict, rows: int = 12, per: str = "step") -> str:
    lines = [f"| ms / {per} | share | calls | kernel / operator |", "|---:|---:|---:|---|"]
    for row in table["top"][:rows]:
        name = row["name"].replace("|", "\\|")
        lines.append(f"| {row['ms_per_step']:.3f} | {row['share']:.1%} | {row['calls']} | `{name}` |")
    return "\n".join(lines)
