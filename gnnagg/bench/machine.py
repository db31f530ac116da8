"""What a benchmark ran on: hardware, software versions and the checkout, for ``results.json``."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = ["describe_machine", "machine_info", "repo_root"]


def repo_root() -> Path | None:
    """The git checkout gnnagg is installed from (it holds ``experiments/``), or ``None``."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "experiments").is_dir() and (root / "gnnagg").is_dir() else None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(root: Path | None) -> str | None:
    if root is None or not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Hardware and software a run used: CPU model, cores, memory, device, torch threads,
    Python, torch, torch_geometric, torch_scatter and gnnagg versions, and the git commit."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "memory_gb": _memory_gb(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": _version("torch_geometric"),
        "torch_scatter": _version("torch_scatter"),
        "gnnagg": _version("gnnagg"),
        "git_commit": _git_commit(repo_root()),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def describe_machine(info: dict[str, Any]) -> str:
    """One line for reports: ``AMD EPYC, 2 cores, 24 GB, CPU, torch 2.13.0, PyG 2.8.1``."""
    parts = [str(info.get("cpu", "unknown CPU"))]
    if info.get("usable_cores"):
        parts.append(f"{info['usable_cores']} cores")
    if info.get("memory_gb"):
        parts.append(f"{info['memory_gb']:.0f} GB RAM")
    parts.append(info.get("gpu") or "CPU only")
    parts.append(f"{info.get('torch_threads')} torch thread(s)")
    parts.append(f"torch {info.get('torch')}")
    parts.append(f"PyG {info.get('torch_geometric')}")
    if info.get("git_commit"):
        parts.append(f"gnnagg {info.get('gnnagg')} @ {str(info['git_commit'])[:10]}")
    return ", ".join(parts)
