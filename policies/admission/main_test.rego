package jesus.admission_test

import data.jesus.admission

test_base_run_is_admitted_with_no_reasons if {
	decide("admitted") == {"allow": true, "reasons": [], "warnings": []}
}

test_every_problem_is_reported_not_just_the_first if {
	result := decide("many_problems")
	not result.allow
	count(result.reasons) >= 4
}

test_reasons_are_sorted if {
	result := decide("many_problems")
	result.reasons == sort(result.reasons)
}

test_missing_policy_data_denies if {
	result := admission.decision with input as cases.admitted with data.jesus.config as null
	not result.allow
	"policy data is missing: data.jesus.config is not loaded or not an object" in result.reasons
}

test_unknown_policy_data_version_denies if {
	config := object.union(data.jesus.config, {"version": 1})
	result := admission.decision with input as cases.admitted with data.jesus.config as config
	not result.allow
	"policy data version 1 is not supported (expected 2)" in result.reasons
}

test_wrong_input_version_denies if {
	result := decide("wrong_input_version")
	not result.allow
	concat("", [
		"input document version jesus.dev/policy-input/v0 is not supported ",
		"(expected jesus.dev/policy-input/v2)",
	]) in result.reasons
}

test_missing_input_version_denies if {
	result := decide("no_input_version")
	not result.allow
	"input document version null is not supported (expected jesus.dev/policy-input/v2)" in result.reasons
}
