# Data goes only to models cleared for it. A run's data classification must be one that every adapter
# the route can reach accepts (fallback may reach any of them), and the site's most sensitive
# classifications go only to models the cluster serves itself.
package jesus.admission

deny contains reason if {
	some adapter in reachable_adapters
	not input.run.dataClassification in object.get(adapter, "dataClassifications", [])
	reason := concat("", [
		sprintf("data classification \"%s\" may not be sent to model adapter \"%s\"", [input.run.dataClassification, adapter.name]),
		" (it accepts: ", accepted_list(adapter), ")",
	])
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

# The adapters a run can reach: those on its chain that exist.
reachable_adapters contains adapter if {
	some adapter in input.adapters
	adapter.found
}

accepted_list(adapter) := "none" if count(object.get(adapter, "dataClassifications", [])) == 0

accepted_list(adapter) := concat(", ", adapter.dataClassifications) if count(adapter.dataClassifications) > 0
