"""The operator's reconcilers: thin Kopf handlers over the pure logic in `jesus.logic`.

Each controller module has `register(registry, context)`, which adds its handlers (with explicit ids)
to a Kopf registry; `jesus.controllers.app` builds the registry and runs the operator.
"""
