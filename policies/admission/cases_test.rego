# The test inputs. Every test in this folder evaluates one entry of `cases`, so that the conformance
# test (tests/e2e/test_policy_conformance.py) can put the very same inputs through both engines.
# A case is `base` with a few fields changed; base itself is a run every default rule admits.
package jesus.admission_test

import data.jesus.admission

# decide(name) is the decision for one named case.
decide(name) := result if {
	result := admission.decision with input as cases[name]
}

base := {
	"version": "jesus.dev/policy-input/v1",
	"run": {
		"name": "summarise-tickets",
		"namespace": "research",
		"labels": {"app": "summariser"},
		"dataClassification": "internal",
		"tools": [{"name": "filesystem"}],
		"gpus": 0,
		"limits": {"maxTokens": 200000, "maxCostMicros": 3000000, "timeoutSeconds": 1800},
		"cost": {"basis": "maxCost", "maxMicros": 3000000},
	},
	"owner": {"user": "alice", "team": "research"},
	"route": {"name": "default", "found": true, "chain": ["claude", "llama"]},
	"adapters": [
		{
			"name": "claude",
			"found": true,
			"ready": true,
			"provider": "anthropic",
			"model": "claude-sonnet-4-5",
			"selfHosted": false,
			"dataClassifications": ["public", "internal"],
		},
		{
			"name": "llama",
			"found": true,
			"ready": true,
			"provider": "vllm",
			"model": "llama-3.3-70b",
			"selfHosted": true,
			"dataClassifications": ["public", "internal", "confidential", "restricted"],
		},
	],
	"budgets": [{
		"name": "research-monthly",
		"namespace": "research",
		"scope": "team research",
		"period": "Monthly",
		"limitMicros": 100000000,
		"spentMicros": 10000000,
		"reservedMicros": 5000000,
		"remainingMicros": 85000000,
		"thresholds": [75, 90, 100],
		"thresholdsFired": [],
		"onExceeded": "Deny",
		"afterRun": {
			"spentMicros": 10000000,
			"reservedMicros": 8000000,
			"remainingMicros": 82000000,
			"thresholdsCrossed": [],
		},
	}],
	"cluster": {"source": "specs", "now": "2026-11-22T04:00:00Z"},
}

self_hosted_only := [base.adapters[1]]

cases["admitted"] := base

cases["no_user"] := object.union(base, {"owner": {"user": ""}})

cases["blank_team"] := object.union(base, {"owner": {"team": "  "}})

cases["no_owner"] := object.remove(base, ["owner"])

cases["confidential_to_hosted_model"] := object.union(base, {"run": {"dataClassification": "confidential"}})

cases["confidential_to_self_hosted_only"] := object.union(base, {
	"run": {"dataClassification": "confidential"},
	"route": {"chain": ["llama"]},
	"adapters": self_hosted_only,
})

cases["restricted_to_hosted_model"] := object.union(base, {"run": {"dataClassification": "restricted"}})

cases["adapter_without_classifications"] := object.union(base, {"adapters": [object.remove(base.adapters[0], ["dataClassifications"])]})

cases["unbounded_cost"] := object.union(base, {"run": {"limits": {"maxTokens": null, "maxCostMicros": null}, "cost": {"basis": "unbounded", "maxMicros": 0}}})

cases["cost_over_site_limit"] := object.union(base, {"run": {"cost": {"maxMicros": 30000000}}})

cases["cost_at_site_limit"] := object.union(base, {"run": {"cost": {"maxMicros": 25000000}}})

cases["cost_just_over_site_limit"] := object.union(base, {"run": {"cost": {"maxMicros": 25004000}}})

cases["cost_under_team_override"] := object.union(base, {
	"owner": {"team": "ml-platform"},
	"run": {"cost": {"maxMicros": 60000000}},
	"budgets": [],
})

cases["cost_over_stricter_team_limit"] := object.union(base, {"owner": {"team": "support"}, "run": {"tools": [], "cost": {"maxMicros": 6000000}}})

cases["cost_estimated_from_tokens"] := object.union(base, {"run": {"limits": {"maxCostMicros": null}, "cost": {"basis": "maxTokens", "maxMicros": 3000000}}})

cases["tool_not_allowed"] := object.union(base, {"run": {"tools": [{"name": "filesystem"}, {"name": "kubernetes"}]}})

cases["tool_allowed_for_team"] := object.union(base, {"owner": {"team": "ml-platform"}, "run": {"tools": [{"name": "kubernetes"}]}, "budgets": []})

cases["tool_of_other_team"] := object.union(base, {"owner": {"team": "support"}, "run": {"tools": [{"name": "git"}]}})

cases["no_tools"] := object.union(base, {"run": {"tools": []}})

cases["gpus_over_site_limit"] := object.union(base, {"run": {"gpus": 2}})

cases["gpus_at_site_limit"] := object.union(base, {"run": {"gpus": 1}})

cases["gpus_within_team_limit"] := object.union(base, {"owner": {"team": "ml-platform"}, "run": {"gpus": 4}, "budgets": []})

cases["model_not_allowed_in_namespace"] := object.union(base, {
	"run": {"namespace": "prod-agents"},
	"adapters": [object.union(base.adapters[0], {"model": "mistral-large"}), base.adapters[1]],
})

cases["models_allowed_in_namespace"] := object.union(base, {"run": {"namespace": "prod-agents"}})

cases["route_missing"] := object.union(base, {"route": {"name": "nope", "found": false, "chain": []}, "adapters": []})

cases["route_empty_chain"] := object.union(base, {"route": {"chain": []}, "adapters": []})

cases["adapter_missing"] := object.union(base, {
	"route": {"chain": ["claude", "ghost"]},
	"adapters": [base.adapters[0], {"name": "ghost", "found": false}],
})

cases["adapter_not_ready"] := object.union(base, {"adapters": [base.adapters[0], object.union(base.adapters[1], {"ready": false})]})

cases["budget_would_be_exceeded"] := object.union(base, {"budgets": [object.union(base.budgets[0], {
	"spentMicros": 95000000,
	"reservedMicros": 3000000,
	"remainingMicros": 2000000,
	"thresholdsFired": [75, 90],
	"afterRun": {"spentMicros": 95000000, "reservedMicros": 6000000, "remainingMicros": 0, "thresholdsCrossed": [75, 90, 100]},
})]})

cases["budget_exceeded_but_only_alerts"] := object.union(cases.budget_would_be_exceeded, {"budgets": [object.union(
	cases.budget_would_be_exceeded.budgets[0],
	{"onExceeded": "Alert"},
)]})

cases["budget_fills_exactly"] := object.union(base, {"budgets": [object.union(base.budgets[0], {
	"spentMicros": 90000000,
	"reservedMicros": 7000000,
	"remainingMicros": 3000000,
	"thresholdsFired": [75, 90],
	"afterRun": {"spentMicros": 90000000, "reservedMicros": 10000000, "remainingMicros": 0, "thresholdsCrossed": [75, 90, 100]},
})]})

cases["budget_crosses_threshold"] := object.union(base, {"budgets": [object.union(base.budgets[0], {
	"spentMicros": 70000000,
	"reservedMicros": 4000000,
	"remainingMicros": 26000000,
	"afterRun": {"spentMicros": 70000000, "reservedMicros": 7000000, "remainingMicros": 23000000, "thresholdsCrossed": [75]},
})]})

cases["wrong_input_version"] := object.union(base, {"version": "jesus.dev/policy-input/v0"})

cases["no_input_version"] := object.remove(base, ["version"])

cases["many_problems"] := object.union(base, {
	"owner": {"user": ""},
	"run": {"gpus": 8, "tools": [{"name": "shell"}], "dataClassification": "restricted"},
})
