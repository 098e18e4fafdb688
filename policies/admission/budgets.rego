# Budgets that cover the run, with their figures as they would be after reserving the run's maximum
# cost. A Budget whose action at 100 % is Deny refuses a run that would take it past its limit; every
# alert threshold the run would newly cross is a warning.
package jesus.admission

import data.jesus.lib.money

deny contains reason if {
	some budget in input.budgets
	budget.onExceeded == "Deny"
	budget.afterRun.reservedMicros + budget.afterRun.spentMicros > budget.limitMicros
	reason := sprintf(
		"budget \"%s\" (%s, %s) would be exceeded: %s left, the run may cost up to %s",
		[budget.name, budget.scope, budget.period, money.usd(budget.remainingMicros), money.usd(input.run.cost.maxMicros)],
	)
}

warn contains reason if {
	some budget in input.budgets
	some threshold in budget.afterRun.thresholdsCrossed
	not threshold in budget.thresholdsFired
	reason := sprintf(
		"budget \"%s\" (%s, %s) would cross its %d %% alert threshold",
		[budget.name, budget.scope, budget.period, threshold],
	)
}
