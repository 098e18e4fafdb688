# Data goes only to models cleared for it. The router never sends a run to an adapter that does not
# accept the run's data classification, so such adapters are skipped (a warning); a route that leaves
# no adapter for the run's data is denied. The site's most sensitive classifications go only to
# models inside the cluster, whatever an adapter accepts. "Inside" is the platform's finding from the
# endpoint URL and the serving block (input adapters[].endpoint.inCluster), never the provider label:
# a "vllm" adapter may point anywhere.
package jesus.admission

deny contains reason if {
	input.route.found
	count(chain_adapter_indexes) > 0
	count(reachable_adapter_indexes) == 0
	reason := sprintf(
		"no model adapter on route policy \"%s\" accepts %s data",
		[input.route.name, input.run.dataClassification],
	)
}

deny contains reason if {
	input.run.dataClassification in config.inClusterOnlyClassifications
	some i in reachable_adapter_indexes
	adapter := input.adapters[i]
	not adapter.endpoint.inCluster == true
	reason := concat("", [
		sprintf("%s data goes only to models inside the cluster, but model adapter \"%s\" (%s) calls ", [
			input.run.dataClassification, adapter.name, adapter.provider,
		]),
		endpoint_text(adapter),
	])
}

warn contains reason if {
	some i in chain_adapter_indexes
	not input.run.dataClassification in input.adapters[i].dataClassifications
	adapter := input.adapters[i]
	reason := concat("", [
		sprintf("model adapter \"%s\" does not accept %s data", [adapter.name, input.run.dataClassification]),
		" (it accepts: ", concat(", ", object.get(adapter, "dataClassifications", [])), "); the route skips it",
	])
}

# Positions in input.adapters of the chain's adapters that exist, and of those the router may send
# this run to (cleared for its data). Positions, not the adapters: the embedded engine copies every
# object a comprehension collects, which costs more than the rest of a decision.
chain_adapter_indexes := [i | some i; input.adapters[i].found]

reachable_adapter_indexes := [i |
	some i in chain_adapter_indexes
	input.run.dataClassification in input.adapters[i].dataClassifications
]
