package jesus.admission_test

test_unknown_cost_denied if {
	result := decide("cost_unknown")
	not result.allow
	result.reasons == ["the run's maximum cost is unknown: the input has no run.cost.maxMicros"]
}

test_cost_over_site_limit_denied if {
	result := decide("cost_over_site_limit")
	not result.allow
	result.reasons == ["maximum cost 30.00 USD exceeds the per-run limit 25.00 USD for team \"research\""]
}

test_cost_at_site_limit_admitted if {
	decide("cost_at_site_limit").allow
}

test_sub_cent_overrun_is_shown_exactly if {
	result := decide("cost_just_over_site_limit")
	not result.allow
	result.reasons == ["maximum cost 25.004000 USD exceeds the per-run limit 25.00 USD for team \"research\""]
}

test_largest_amount_is_shown_exactly if {
	result := decide("cost_largest_amount")
	not result.allow
	result.reasons == ["maximum cost 999999999999.999999 USD exceeds the per-run limit 25.00 USD for team \"research\""]
}

test_team_override_raises_the_limit if {
	decide("cost_under_team_override").allow
}

test_team_override_lowers_the_limit if {
	result := decide("cost_over_stricter_team_limit")
	not result.allow
	"maximum cost 6.00 USD exceeds the per-run limit 5.00 USD for team \"support\"" in result.reasons
}

test_cost_bound_by_tokens_admitted if {
	decide("cost_bound_by_tokens") == {"allow": true, "reasons": [], "warnings": []}
}
