# A run must reach at least one model through a RoutePolicy that exists and serves it, and every
# adapter on the chain must exist: a chain with a hole would fail over into nothing at run time.
package jesus.admission

deny contains reason if {
	input.route.found == false
	reason := sprintf("route policy \"%s\" does not exist in namespace \"%s\"", [input.route.name, input.run.namespace])
}

deny contains reason if {
	input.route.found
	input.route.appliesToRun == false
	reason := sprintf("route policy \"%s\" does not serve this run: its selector does not match the run's labels", [input.route.name])
}

deny contains reason if {
	input.route.found
	count(input.route.chain) == 0
	reason := sprintf("route policy \"%s\" has an empty fallback chain", [input.route.name])
}

deny contains reason if {
	input.route.found
	some i
	input.adapters[i].found == false
	adapter := input.adapters[i]
	reason := sprintf(
		"model adapter \"%s\" on the chain of route policy \"%s\" does not exist",
		[adapter.name, input.route.name],
	)
}

warn contains reason if {
	some i in chain_adapter_indexes
	input.adapters[i].ready == false
	adapter := input.adapters[i]
	reason := sprintf("model adapter \"%s\" is not ready; the route will fail over past it", [adapter.name])
}
