package jesus.admission_test

test_tool_outside_site_default_denied if {
	result := decide("tool_not_allowed")
	not result.allow
	result.reasons == ["MCP tool server \"kubernetes\" is not allowed for team \"research\" (allowed: fetch, filesystem, git)"]
}

test_tool_allowed_for_team_admitted if {
	decide("tool_allowed_for_team").allow
}

test_team_list_replaces_site_default if {
	result := decide("tool_of_other_team")
	not result.allow
	"MCP tool server \"git\" is not allowed for team \"support\" (allowed: fetch, filesystem, zendesk)" in result.reasons
}

test_run_without_tools_admitted if {
	decide("no_tools").allow
}

test_odd_characters_in_names_are_kept if {
	result := decide("odd_characters")
	result.reasons == ["MCP tool server \"say \"hi\"\\ é\" is not allowed for team \"research\" (allowed: fetch, filesystem, git)"]
}
