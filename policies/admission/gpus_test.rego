package jesus.admission_test

test_model_on_more_gpus_than_the_site_allows_denied if {
	result := decide("gpus_over_site_limit")
	not result.allow
	result.reasons == ["model adapter \"llama\" serves on 2 GPUs per replica; runs of team \"research\" may use at most 1"]
}

test_gpus_of_an_adapter_the_run_skips_do_not_count if {
	decide("gpus_of_skipped_adapter_do_not_count").allow
}

test_team_may_use_more_gpus if {
	decide("gpus_within_team_limit").allow
}
