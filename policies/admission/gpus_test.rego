package jesus.admission_test

test_gpus_over_site_limit_denied if {
	result := decide("gpus_over_site_limit")
	not result.allow
	result.reasons == ["the run asks for 2 GPUs; team \"research\" may use at most 1 per run"]
}

test_gpus_at_site_limit_admitted if {
	decide("gpus_at_site_limit").allow
}

test_team_may_use_more_gpus if {
	decide("gpus_within_team_limit").allow
}
