package jesus.admission_test

test_confidential_data_not_sent_to_hosted_model if {
	result := decide("confidential_to_hosted_model")
	not result.allow
	"confidential data goes only to self-hosted models, but model adapter \"claude\" is hosted by anthropic" in result.reasons
	"data classification \"confidential\" may not be sent to model adapter \"claude\" (it accepts: public, internal)" in result.reasons
}

test_confidential_data_to_self_hosted_model_admitted if {
	decide("confidential_to_self_hosted_only").allow
}

test_restricted_data_not_sent_to_hosted_model if {
	result := decide("restricted_to_hosted_model")
	not result.allow
	"restricted data goes only to self-hosted models, but model adapter \"claude\" is hosted by anthropic" in result.reasons
}

test_adapter_that_lists_no_classifications_accepts_none if {
	result := decide("adapter_without_classifications")
	not result.allow
	result.reasons == ["data classification \"internal\" may not be sent to model adapter \"claude\" (it accepts: none)"]
}
