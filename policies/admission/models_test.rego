package jesus.admission_test

test_model_outside_namespace_list_denied if {
	result := decide("model_not_allowed_in_namespace")
	not result.allow
	result.reasons == [concat("", [
		"model \"mistral-large\" (adapter \"claude\") is not allowed in namespace \"prod-agents\" ",
		"(allowed: claude-*, gpt-5*, llama-*)",
	])]
}

test_models_matching_namespace_patterns_admitted if {
	decide("models_allowed_in_namespace").allow
}
