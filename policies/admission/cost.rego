# A run must have a bounded cost, and that bound must fit the per-run ceiling of its team (or the
# site default). The input carries the estimate: limits.maxCost, else maxTokens priced at the most
# expensive adapter on the route.
package jesus.admission

import data.jesus.lib.money

deny contains reason if {
	input.run.cost.basis == "unbounded"
	reason := "the run's cost is unbounded: set limits.maxCost or limits.maxTokens"
}

deny contains reason if {
	input.run.cost.basis != "unbounded"
	ceiling := team_setting("maxRunCostMicros")
	input.run.cost.maxMicros > ceiling
	reason := sprintf(
		"estimated maximum cost %s exceeds the per-run limit %s for team \"%s\"",
		[money.usd(input.run.cost.maxMicros), money.usd(ceiling), input.owner.team],
	)
}

warn contains reason if {
	input.run.cost.basis == "maxTokens"
	reason := sprintf(
		"no limits.maxCost: the maximum cost %s is estimated from limits.maxTokens at the most expensive adapter",
		[money.usd(input.run.cost.maxMicros)],
	)
}
