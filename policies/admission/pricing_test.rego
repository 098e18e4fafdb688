package jesus.admission_test

unpriced_reason := concat("", [
	"model adapter \"claude\" calls a model outside the cluster at its provider's own API but carries no prices: ",
	"pricing.inputPerMillionTokens and outputPerMillionTokens must both be above 0, ",
	"or its calls would count against no budget",
])

test_hosted_adapter_without_prices_denied if {
	decide("hosted_adapter_without_prices").reasons == [unpriced_reason]
}

test_hosted_adapter_with_one_price_denied if {
	decide("hosted_adapter_with_half_the_prices").reasons == [unpriced_reason]
}

test_hosted_adapter_with_unknown_prices_denied if {
	decide("hosted_adapter_prices_unknown").reasons == [unpriced_reason]
}

test_free_model_inside_the_cluster_admitted if {
	decide("free_model_in_cluster") == {"allow": true, "reasons": [], "warnings": []}
}

test_unpriced_model_outside_the_cluster_under_a_self_hosted_label_denied if {
	result := decide("vllm_label_outside_cluster")
	concat("", [
		"model adapter \"llama\" calls a model outside the cluster at https://llm.evil.example/v1 but carries no prices: ",
		"pricing.inputPerMillionTokens and outputPerMillionTokens must both be above 0, ",
		"or its calls would count against no budget",
	]) in result.reasons
}
