# Every run names the person and the team that answer for it: budgets, tools and limits are per team,
# and the audit record must say who asked.
package jesus.admission

deny contains "owner.user is required: the run names no user who answers for it" if {
	not non_empty_string(object.get(input, ["owner", "user"], ""))
}

deny contains "owner.team is required: the run names no team, so no team limits or budgets apply" if {
	not non_empty_string(object.get(input, ["owner", "team"], ""))
}

non_empty_string(value) if {
	is_string(value)
	trim_space(value) != ""
}
