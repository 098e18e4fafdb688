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
	trim(value, whitespace) != ""
}

# Whitespace, ASCII and Unicode, spelled out: the two engines disagree on what trim_space and the
# regex class \s cover (U+00A0, U+2003, ...), and on a blank name they must not disagree.
whitespace := "\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
