package jesus.admission_test

test_empty_user_denied if {
	result := decide("no_user")
	not result.allow
	result.reasons == ["owner.user is required: the run names no user who answers for it"]
}

test_blank_team_denied if {
	result := decide("blank_team")
	not result.allow
	"owner.team is required: the run names no team, so no team limits or budgets apply" in result.reasons
}

test_missing_owner_denies_both if {
	result := decide("no_owner")
	not result.allow
	"owner.user is required: the run names no user who answers for it" in result.reasons
	"owner.team is required: the run names no team, so no team limits or budgets apply" in result.reasons
}

test_team_of_unicode_spaces_denied if {
	result := decide("unicode_blank_team")
	not result.allow
	"owner.team is required: the run names no team, so no team limits or budgets apply" in result.reasons
}
