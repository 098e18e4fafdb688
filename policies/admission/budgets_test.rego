package jesus.admission_test

test_budget_that_would_be_exceeded_denies if {
	result := decide("budget_would_be_exceeded")
	not result.allow
	result.reasons == [concat("", [
		"budget \"research-monthly\" (team=research, Monthly) would be exceeded: ",
		"2.00 USD left of 100.00 USD, the run may cost up to 3.00 USD",
	])]
	result.warnings == ["budget \"research-monthly\" (team=research, Monthly) would reach its 100 % alert threshold"]
}

test_overspent_budget_shows_nothing_left if {
	result := decide("budget_already_overspent")
	not result.allow
	result.reasons == [concat("", [
		"budget \"research-monthly\" (team=research, Monthly) would be exceeded: ",
		"0.00 USD left of 100.00 USD, the run may cost up to 3.00 USD",
	])]
	result.warnings == []
}

test_budget_that_only_alerts_admits if {
	result := decide("budget_exceeded_but_only_alerts")
	result.allow
	result.warnings == ["budget \"research-monthly\" (team=research, Monthly) would reach its 100 % alert threshold"]
}

test_budget_filled_exactly_admits if {
	decide("budget_fills_exactly").allow
}

test_new_threshold_warns if {
	result := decide("budget_crosses_threshold")
	result.allow
	result.warnings == ["budget \"research-monthly\" (team=research, Monthly) would reach its 75 % alert threshold"]
}

test_run_without_budgets_admitted if {
	decide("no_budgets").allow
}
