# A run's maximum cost must be known and fit the per-run ceiling of its team (or the site default).
# The input carries the bound: the smaller of limits.maxCost and limits.maxTokens priced at the most
# expensive adapter on the route (jesus.logic.budget.max_run_cost).
package jesus.admission

import data.jesus.lib.money

deny contains "the run's maximum cost is unknown: the input has no run.cost.maxMicros" if {
	not is_number(object.get(input, ["run", "cost", "maxMicros"], null))
}

deny contains reason if {
	ceiling := team_setting("maxRunCostMicros")
	input.run.cost.maxMicros > ceiling
	reason := sprintf(
		"maximum cost %s exceeds the per-run limit %s for team \"%s\"",
		[money.usd(input.run.cost.maxMicros), money.usd(ceiling), input.owner.team],
	)
}
