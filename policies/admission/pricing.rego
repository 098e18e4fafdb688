# A model outside the cluster must carry its prices. Without them its calls cost 0: the run's maximum
# cost bound and every Budget would count nothing for it, so it would pass every budget. Models inside
# the cluster (served by the platform, a Service, scripted replies) may be free.
package jesus.admission

deny contains reason if {
	some i in reachable_adapter_indexes
	adapter := input.adapters[i]
	not adapter.endpoint.inCluster == true
	not priced(adapter.pricing)
	reason := concat("", [
		sprintf("model adapter \"%s\" calls a model outside the cluster at ", [adapter.name]),
		endpoint_text(adapter),
		" but carries no prices: pricing.inputPerMillionTokens and outputPerMillionTokens must both be",
		" above 0, or its calls would count against no budget",
	])
}

priced(pricing) if {
	is_number(pricing.inputPerMillionMicros)
	is_number(pricing.outputPerMillionMicros)
	pricing.inputPerMillionMicros > 0
	pricing.outputPerMillionMicros > 0
}
