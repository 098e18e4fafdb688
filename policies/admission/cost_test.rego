package jesus.admission_test

test_unbounded_run_denied if {
	result := decide("unbounded_cost")
	not result.allow
	result.reasons == ["the run's cost is unbounded: set limits.maxCost or limits.maxTokens"]
}

test_cost_over_site_limit_denied if {
	result := decide("cost_over_site_limit")
	not result.allow
	"estimated maximum cost 30.00 USD exceeds the per-run limit 25.00 USD for team \"research\"" in result.reasons
}

test_cost_at_site_limit_admitted if {
	decide("cost_at_site_limit").allow
}

test_sub_cent_overrun_is_shown_exactly if {
	result := decide("cost_just_over_site_limit")
	not result.allow
	"estimated maximum cost 25.004000 USD exceeds the per-run limit 25.00 USD for team \"research\"" in result.reasons
}

test_team_override_raises_the_limit if {
	decide("cost_under_team_override").allow
}

test_team_override_lowers_the_limit if {
	result := decide("cost_over_stricter_team_limit")
	not result.allow
	"estimated maximum cost 6.00 USD exceeds the per-run limit 5.00 USD for team \"support\"" in result.reasons
}

test_cost_estimated_from_tokens_warns if {
	result := decide("cost_estimated_from_tokens")
	result.allow
	result.warnings == [concat("", [
		"no limits.maxCost: the maximum cost 3.00 USD is estimated from limits.maxTokens ",
		"at the most expensive adapter",
	])]
}
