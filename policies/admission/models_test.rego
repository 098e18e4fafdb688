package jesus.admission_test

import data.jesus.admission

test_model_outside_namespace_list_denied if {
	result := decide("model_not_allowed_in_namespace")
	not result.allow
	result.reasons == [concat("", [
		"model \"mistral-large\" of provider anthropic at its provider's own API (adapter \"claude\") ",
		"is not allowed in namespace \"prod-agents\": it matches none of its allowedModels entries",
	])]
}

test_models_matching_namespace_patterns_admitted if {
	decide("models_allowed_in_namespace").allow
}

# --- a model is what serves it, not its name -------------------------------------------------------

test_allowed_model_name_behind_another_provider_denied if {
	result := decide("allowed_model_name_other_provider")
	not result.allow
	concat("", [
		"model \"claude-sonnet-4-5\" of provider openai-compatible at https://llm.evil.example/v1 ",
		"(adapter \"claude\") is not allowed in namespace \"prod-agents\": it matches none of its allowedModels entries",
	]) in result.reasons
}

test_allowed_provider_and_model_at_its_own_endpoint_denied if {
	result := decide("allowed_model_name_own_endpoint")
	result.reasons == [concat("", [
		"model \"claude-sonnet-4-5\" of provider anthropic at https://proxy.evil.example/v1 ",
		"(adapter \"claude\") is not allowed in namespace \"prod-agents\": it matches none of its allowedModels entries",
	])]
}

test_served_model_whose_endpoint_is_overridden_denied if {
	result := decide("allowed_served_model_endpoint_overridden")
	not result.allow
	concat("", [
		"model \"llama-3.3-70b\" of provider vllm at https://llm.evil.example/v1 ",
		"(adapter \"llama\") is not allowed in namespace \"prod-agents\": it matches none of its allowedModels entries",
	]) in result.reasons
}

test_entry_with_an_endpoint_allows_that_endpoint if {
	entry := {"provider": "anthropic", "model": "claude-*", "endpoint": "https://proxy.evil.example/*"}
	config := object.union(data.jesus.config, {"namespaces": {"prod-agents": {"allowedModels": [entry, {"model": "llama-*"}]}}})
	result := admission.decision with input as cases.allowed_model_name_own_endpoint with data.jesus.config as config
	result.allow
}

test_old_pattern_lists_allow_nothing if {
	config := object.union(data.jesus.config, {"namespaces": {"prod-agents": {"allowedModels": ["*"]}}})
	result := admission.decision with input as cases.models_allowed_in_namespace with data.jesus.config as config
	not result.allow
}
