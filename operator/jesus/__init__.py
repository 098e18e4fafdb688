"""Jesus: a declarative GitOps control plane for AI agents on Kubernetes."""

__version__ = "0.1.0"
