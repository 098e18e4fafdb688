"""A local Kubernetes control plane built from pinned Go modules, for tests and for `jesus dev`."""

from jesus.devcluster.controlplane import ComponentCrashedError, ControlPlane, ControlPlaneError
from jesus.devcluster.toolchain import ToolchainError, ensure_all, ensure_tool

__all__ = [
    "ComponentCrashedError",
    "ControlPlane",
    "ControlPlaneError",
    "ToolchainError",
    "ensure_all",
    "ensure_tool",
]
