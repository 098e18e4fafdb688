package jesus.admission_test

test_missing_route_denied if {
	result := decide("route_missing")
	not result.allow
	result.reasons == ["route policy \"nope\" does not exist in namespace \"research\""]
}

test_route_whose_selector_excludes_the_run_denied if {
	result := decide("route_not_for_this_run")
	not result.allow
	result.reasons == ["route policy \"default\" does not serve this run: its selector does not match the run's labels"]
}

test_empty_chain_denied if {
	result := decide("route_empty_chain")
	not result.allow
	result.reasons == ["route policy \"default\" has an empty fallback chain"]
}

test_missing_adapter_denied if {
	result := decide("adapter_missing")
	not result.allow
	result.reasons == ["model adapter \"ghost\" on the chain of route policy \"default\" does not exist"]
}

test_adapter_not_ready_warns if {
	result := decide("adapter_not_ready")
	result.allow
	result.warnings == ["model adapter \"llama\" is not ready; the route will fail over past it"]
}

test_adapter_readiness_unknown_is_silent if {
	decide("adapter_readiness_unknown") == {"allow": true, "reasons": [], "warnings": []}
}
