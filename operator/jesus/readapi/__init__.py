"""The read API (`jesus api`): FastAPI over the run archive, read-only, under /v1 (docs/api.md).

- `access`: who the caller is (TokenReview) and which namespaces they may read (SubjectAccessReview),
  cached on an injected clock; local mode without a cluster;
- `models`: the responses, as the OpenAPI document publishes them;
- `app`: the routes (`create_app`).

Queries are checked by `jesus.logic.run_queries` and answered by `jesus.records.reader`.
"""
