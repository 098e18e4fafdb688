"""The cluster client and its helpers: the one place the platform talks to the Kubernetes API.

- `jesus.kube.client`: `KubeClient` over kr8s (get, list, create, patch, status, events) and where
  each kind lives (`RESOURCES`).
- `jesus.kube.errors`: `KubeError` and the statuses callers act on (NotFound, Conflict, Invalid), and
  `ForeignChildError`.
- `jesus.kube.children`: `ensure_child`, the one way a child object is created, adopted or refused.

The object facts the pure builders need as well (`JsonObject`, `owner_reference`, `bounded_name`,
`ownership`, `spec_digest`) live in `jesus.api.objects`, below this package. No Kopf here: domain
errors become Kopf's in the controllers.
"""

from jesus.api.objects import JsonObject
from jesus.kube.children import Child, ChildAction, ensure_child
from jesus.kube.client import RESOURCES, KubeClient, Resource
from jesus.kube.errors import ConflictError, ForeignChildError, InvalidError, KubeError, NotFoundError

__all__ = [
    "RESOURCES",
    "Child",
    "ChildAction",
    "ConflictError",
    "ForeignChildError",
    "InvalidError",
    "JsonObject",
    "KubeClient",
    "KubeError",
    "NotFoundError",
    "Resource",
    "ensure_child",
]
