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
		"priority": 0,
		"tools": [{"name": "filesystem", "transport": "stdio", "allowedTools": null}],
		"limits": {"maxCostMicros": 3000000, "maxTokens": null, "timeoutSeconds": 1800, "maxTurns": 20},
		"cost": {"maxMicros": 3000000, "basis": "maxCost"},
		"dependsOn": [],
	},
	"owner": {"user": "alice", "team": "research"},
	"route": {"name": "default", "found": true, "appliesToRun": true, "chain": ["claude", "llama"]},
	"adapters": [
		{
			"name": "claude",
			"found": true,
			"ready": true,
			"provider": "anthropic",
			"model": "claude-sonnet-4-5",
			"selfHosted": false,
			"dataClassifications": ["public", "internal"],
			"pricing": {"inputPerMillionMicros": 3000000, "outputPerMillionMicros": 15000000, "currency": "USD"},
			"gpus": null,
		},
		{
			"name": "llama",
			"found": true,
			"ready": true,
			"provider": "vllm",
			"model": "llama-3.3-70b",
			"selfHosted": true,
			"dataClassifications": ["public", "internal", "confidential", "restricted"],
			"pricing": {"inputPerMillionMicros": 0, "outputPerMillionMicros": 0, "currency": "USD"},
			"gpus": {"count": 1, "type": "NVIDIA-H100-80GB-HBM3", "replicas": 1},
		},
	],
	"budgets": [{
		"name": "research-monthly",
		"namespace": "research",
		"scope": "team=research",
		"period": "Monthly",
		"currency": "USD",
		"limitMicros": 100000000,
		"spentMicros": 10000000,
		"reservedMicros": 5000000,
		"remainingMicros": 85000000,
		"utilizationPercent": 15,
		"thresholds": [75, 90, 100],
		"thresholdsFired": [],
		"denyNewRuns": true,
		"afterRun": {
			"spentMicros": 10000000,
			"reservedMicros": 8000000,
			"remainingMicros": 82000000,
			"utilizationPercent": 18,
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

cases["confidential_to_hosted_model"] := object.union(base, {"run": {"dataClassification": "confidential"}, "adapters": [
	object.union(base.adapters[0], {"dataClassifications": ["public", "internal", "confidential"]}),
	base.adapters[1],
]})

cases["confidential_skips_hosted_model"] := object.union(base, {"run": {"dataClassification": "confidential"}})

cases["confidential_to_self_hosted_only"] := object.union(base, {
	"run": {"dataClassification": "confidential"},
	"route": {"chain": ["llama"]},
	"adapters": self_hosted_only,
})

cases["no_adapter_accepts_the_data"] := object.union(base, {
	"run": {"dataClassification": "restricted"},
	"route": {"chain": ["claude"]},
	"adapters": [base.adapters[0]],
})

cases["restricted_to_hosted_model"] := object.union(base, {"run": {"dataClassification": "restricted"}, "adapters": [
	object.union(base.adapters[0], {"dataClassifications": ["restricted"]}),
	base.adapters[1],
]})

cases["cost_unknown"] := object.union(base, {"run": {"cost": {"maxMicros": null}}})

cases["cost_over_site_limit"] := object.union(base, {"run": {"cost": {"maxMicros": 30000000}}})

cases["cost_at_site_limit"] := object.union(base, {"run": {"cost": {"maxMicros": 25000000}}})

cases["cost_just_over_site_limit"] := object.union(base, {"run": {"cost": {"maxMicros": 25004000}}})

cases["cost_under_team_override"] := object.union(base, {
	"owner": {"team": "ml-platform"},
	"run": {"cost": {"maxMicros": 60000000}},
	"budgets": [],
})

cases["cost_over_stricter_team_limit"] := object.union(base, {"owner": {"team": "support"}, "run": {"tools": [], "cost": {"maxMicros": 6000000}}})

cases["cost_bound_by_tokens"] := object.union(base, {"run": {"limits": {"maxTokens": 100000}, "cost": {"basis": "maxTokens", "maxMicros": 1500000}}})

cases["tool_not_allowed"] := object.union(base, {"run": {"tools": [
	{"name": "filesystem", "transport": "stdio", "allowedTools": null},
	{"name": "kubernetes", "transport": "http", "allowedTools": ["get"]},
]}})

cases["tool_allowed_for_team"] := object.union(base, {
	"owner": {"team": "ml-platform"},
	"run": {"tools": [{"name": "kubernetes", "transport": "http", "allowedTools": null}]},
	"budgets": [],
})

cases["tool_of_other_team"] := object.union(base, {"owner": {"team": "support"}, "run": {"tools": [{"name": "git", "transport": "stdio", "allowedTools": null}]}})

cases["no_tools"] := object.union(base, {"run": {"tools": []}})

cases["gpus_over_site_limit"] := object.union(base, {"adapters": [base.adapters[0], object.union(base.adapters[1], {"gpus": {"count": 2}})]})

cases["gpus_of_skipped_adapter_do_not_count"] := object.union(cases.gpus_over_site_limit, {"run": {"dataClassification": "public"}, "adapters": [
	object.union(base.adapters[0], {"dataClassifications": ["public"]}),
	object.union(cases.gpus_over_site_limit.adapters[1], {"dataClassifications": ["confidential"]}),
]})

cases["gpus_within_team_limit"] := object.union(cases.gpus_over_site_limit, {"owner": {"team": "ml-platform"}, "budgets": []})

cases["model_not_allowed_in_namespace"] := object.union(base, {
	"run": {"namespace": "prod-agents"},
	"adapters": [object.union(base.adapters[0], {"model": "mistral-large"}), base.adapters[1]],
})

cases["models_allowed_in_namespace"] := object.union(base, {"run": {"namespace": "prod-agents"}})

cases["route_missing"] := object.union(base, {"route": {"name": "nope", "found": false, "appliesToRun": null, "chain": []}, "adapters": []})

cases["route_not_for_this_run"] := object.union(base, {"route": {"appliesToRun": false}})

cases["route_empty_chain"] := object.union(base, {"route": {"chain": []}, "adapters": []})

cases["adapter_missing"] := object.union(base, {
	"route": {"chain": ["claude", "ghost"]},
	"adapters": [base.adapters[0], {"name": "ghost", "found": false}],
})

cases["adapter_not_ready"] := object.union(base, {"adapters": [base.adapters[0], object.union(base.adapters[1], {"ready": false})]})

cases["adapter_readiness_unknown"] := object.union(base, {"adapters": [base.adapters[0], object.union(base.adapters[1], {"ready": null})]})

cases["budget_would_be_exceeded"] := object.union(base, {"budgets": [object.union(base.budgets[0], {
	"spentMicros": 95000000,
	"reservedMicros": 3000000,
	"remainingMicros": 2000000,
	"utilizationPercent": 98,
	"thresholdsFired": [75, 90],
	"afterRun": {"spentMicros": 95000000, "reservedMicros": 6000000, "remainingMicros": -1000000, "utilizationPercent": 101, "thresholdsCrossed": [75, 90, 100]},
})]})

cases["budget_already_overspent"] := object.union(cases.budget_would_be_exceeded, {"budgets": [object.union(cases.budget_would_be_exceeded.budgets[0], {
	"spentMicros": 101000000,
	"reservedMicros": 0,
	"remainingMicros": -1000000,
	"utilizationPercent": 101,
	"thresholdsFired": [75, 90, 100],
	"afterRun": {"spentMicros": 101000000, "reservedMicros": 3000000, "remainingMicros": -4000000, "utilizationPercent": 104},
})]})

cases["budget_exceeded_but_only_alerts"] := object.union(cases.budget_would_be_exceeded, {"budgets": [object.union(
	cases.budget_would_be_exceeded.budgets[0],
	{"denyNewRuns": false},
)]})

cases["budget_fills_exactly"] := object.union(base, {"budgets": [object.union(base.budgets[0], {
	"spentMicros": 90000000,
	"reservedMicros": 7000000,
	"remainingMicros": 3000000,
	"utilizationPercent": 97,
	"thresholdsFired": [75, 90],
	"afterRun": {"spentMicros": 90000000, "reservedMicros": 10000000, "remainingMicros": 0, "utilizationPercent": 100, "thresholdsCrossed": [75, 90, 100]},
})]})

cases["budget_crosses_threshold"] := object.union(base, {"budgets": [object.union(base.budgets[0], {
	"spentMicros": 70000000,
	"reservedMicros": 4000000,
	"remainingMicros": 26000000,
	"utilizationPercent": 74,
	"afterRun": {"spentMicros": 70000000, "reservedMicros": 7000000, "remainingMicros": 23000000, "utilizationPercent": 77, "thresholdsCrossed": [75]},
})]})

cases["no_budgets"] := object.union(base, {"budgets": []})

cases["wrong_input_version"] := object.union(base, {"version": "jesus.dev/policy-input/v0"})

cases["no_input_version"] := object.remove(base, ["version"])

cases["many_problems"] := object.union(base, {
	"owner": {"user": ""},
	"run": {"tools": [{"name": "shell", "transport": "stdio", "allowedTools": null}], "dataClassification": "restricted"},
	"adapters": [
		object.union(base.adapters[0], {"dataClassifications": ["restricted"]}),
		object.union(base.adapters[1], {"gpus": {"count": 8}}),
	],
})

# Quotes, backslashes, control characters and non-ASCII text must reach both engines unchanged.
cases["odd_characters"] := object.union(base, {
	"owner": {"user": "o\"brien\\ é\n"},
	"run": {"tools": [{"name": "say \"hi\"\\ é", "transport": "stdio", "allowedTools": null}]},
})

# Names made only of Unicode spaces are blank in both engines.
cases["unicode_blank_team"] := object.union(base, {"owner": {"team": "\u2003\u00a0\u3000"}})
