# Data goes only to models cleared for it. The router never sends a run to an adapter that does not
# accept the run's data classification, so such adapters are skipped (a warning); a route that leaves
# no adapter for the run's data is denied. The site's most sensitive classifications go only to
# models the platform serves itself, whatever an adapter accepts.
package jesus.admission

deny contains reason if {
	input.route.found
	count(chain_adapters) > 0
	count(reachable_adapters) == 0
	reason := sprintf(
		"no model adapter on route policy \"%s\" accepts %s data",
		[input.route.name, input.run.dataClassification],
	)
}

deny contains reason if {
	input.run.dataClassification in config.selfHostedOnlyClassifications
	some adapter in reachable_adapters
	not adapter.selfHosted
	reason := sprintf(
		"%s data goes only to self-hosted models, but model adapter \"%s\" is hosted by %s",
		[input.run.dataClassification, adapter.name, adapter.provider],
	)
}

warn contains reason if {
	some adapter in chain_adapters
	not accepts_run_data(adapter)
	reason := concat("", [
		sprintf("model adapter \"%s\" does not accept %s data", [adapter.name, input.run.dataClassification]),
		" (it accepts: ", concat(", ", object.get(adapter, "dataClassifications", [])), "); the route skips it",
	])
}

# The adapters on the run's chain that exist. (Arrays, not sets: a set of objects makes the engine
# compare whole adapters, which the embedded engine does slowly.)
chain_adapters := [adapter | some adapter in input.adapters; adapter.found]

# The adapters the router may send this run to: on the chain, existing, and cleared for its data.
reachable_adapters := [adapter | some adapter in chain_adapters; accepts_run_data(adapter)]

accepts_run_data(adapter) if input.run.dataClassification in object.get(adapter, "dataClassifications", [])
