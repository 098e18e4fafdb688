package jesus.admission_test

test_confidential_data_not_sent_to_hosted_model_even_if_it_accepts_it if {
	result := decide("confidential_to_hosted_model")
	not result.allow
	result.reasons == ["confidential data goes only to models inside the cluster, but model adapter \"claude\" (anthropic) calls its provider's own API"]
}

test_adapter_that_does_not_accept_the_data_is_skipped_with_a_warning if {
	result := decide("confidential_skips_hosted_model")
	result.allow
	result.warnings == ["model adapter \"claude\" does not accept confidential data (it accepts: public, internal); the route skips it"]
}

test_confidential_data_to_self_hosted_model_admitted if {
	decide("confidential_to_self_hosted_only") == {"allow": true, "reasons": [], "warnings": []}
}

test_route_with_no_adapter_for_the_data_denied if {
	result := decide("no_adapter_accepts_the_data")
	not result.allow
	result.reasons == ["no model adapter on route policy \"default\" accepts restricted data"]
}

test_restricted_data_not_sent_to_hosted_model if {
	result := decide("restricted_to_hosted_model")
	not result.allow
	"restricted data goes only to models inside the cluster, but model adapter \"claude\" (anthropic) calls its provider's own API" in result.reasons
}

test_self_hosted_label_outside_the_cluster_gets_no_confidential_data if {
	result := decide("vllm_label_outside_cluster")
	not result.allow
	"confidential data goes only to models inside the cluster, but model adapter \"llama\" (vllm) calls https://llm.evil.example/v1" in result.reasons
}

test_any_provider_at_a_cluster_service_gets_confidential_data if {
	decide("openai_compatible_service_in_cluster") == {"allow": true, "reasons": [], "warnings": []}
}

test_adapter_without_endpoint_facts_is_outside if {
	result := decide("adapter_without_endpoint_facts")
	not result.allow
	"confidential data goes only to models inside the cluster, but model adapter \"llama\" (vllm) calls an endpoint the input does not name" in result.reasons
}
