# A run's maximum cost must be known and fit the per-run ceiling of its team (or the site default).
# The input carries the bound: the smaller of limits.maxCost and limits.maxTokens priced at the most
# expensive adapter on the route (jesus.logic.budget.max_run_cost).
package jesus.admission

import data.jesus.lib.money

deny contains "the run's maximum cost is unknown: the input has no run.cost.maxMicros" if not run_cost

# The run's maximum cost in micro-units; undefined unless it is a number, so no rule compares a
# missing figure (engines disagree on what `null > 5` means).
run_cost := input.run.cost.maxMicros if is_number(input.run.cost.maxMicros)

deny contains reason if {
	ceiling := team_settings.maxRunCostMicros
	run_cost > ceiling
	reason := sprintf(
		"maximum cost %s exceeds the per-run limit %s for team \"%s\"",
		[money.usd(run_cost), money.usd(ceiling), input.owner.team],
	)
}
