"""Pure decisions: no I/O, no Kubernetes client, no HTTP, no provider SDK."""
