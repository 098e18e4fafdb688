# Budgets that cover the run, with their figures as they would be after reserving the run's maximum
# cost. A Budget that denies new runs at 100 % refuses a run that would take it past its limit
# (filling it exactly is allowed); every alert threshold the run would newly reach is a warning.
package jesus.admission

import data.jesus.lib.money

deny contains reason if {
	some budget in input.budgets
	budget.denyNewRuns
	budget.afterRun.spentMicros + budget.afterRun.reservedMicros > budget.limitMicros
	reason := sprintf(
		"budget \"%s\" (%s, %s) would be exceeded: %s left of %s, the run may cost up to %s",
		[
			budget.name, budget.scope, budget.period, money.usd(max([budget.remainingMicros, 0])),
			money.usd(budget.limitMicros), money.usd(run_cost),
		],
	)
}

warn contains reason if {
	some budget in input.budgets
	some threshold in budget.afterRun.thresholdsCrossed
	not threshold in budget.thresholdsFired
	reason := sprintf(
		"budget \"%s\" (%s, %s) would reach its %d %% alert threshold",
		[budget.name, budget.scope, budget.period, threshold],
	)
}
