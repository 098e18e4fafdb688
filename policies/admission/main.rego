# Admission of AgentRuns: the one entry point both engines evaluate.
#
# Query `data.jesus.admission.decision`; the answer is always
#   {"allow": bool, "reasons": [string], "warnings": [string]}
# and `allow` is true only when no rule in this package added a reason to `deny`.
# Every rule file in this folder adds to the partial sets `deny` and `warn`; site values come from
# `data.jesus.config` (policies/data.json, a ConfigMap in the cluster). The input document is built by
# jesus.logic.policy_input.build_policy_input and documented in docs/policy-input.md.
package jesus.admission

# The input document version these rules understand; a different one fails closed.
supported_input_version := "jesus.dev/policy-input/v2"

# The site-data version these rules understand.
supported_config_version := 2

config := data.jesus.config

# The owner's team's overrides of the site defaults (an empty object when the team has none).
team_config := object.get(config, ["teams", input.owner.team], {})

# The run namespace's overrides of the site defaults.
namespace_config := object.get(config, ["namespaces", input.run.namespace], {})

# The site values that apply to the run's team: the team's overrides over the site defaults.
# (One complete rule rather than a function per lookup: the embedded engine evaluates it once.)
team_settings := object.union(object.filter(config, team_setting_keys), team_config)

team_setting_keys := ["maxRunCostMicros", "maxGpusPerRun", "allowedToolServers"]

decision := {
	"allow": allow,
	"reasons": sort([reason | some reason in deny]),
	"warnings": sort([warning | some warning in warn]),
}

default allow := false

allow if count(deny) == 0

# Missing or foreign site data must never read as "no limits": refuse to admit anything.
deny contains "policy data is missing: data.jesus.config is not loaded or not an object" if not config_loaded

config_loaded if is_object(data.jesus.config)

deny contains reason if {
	config_loaded
	object.get(config, "version", null) != supported_config_version
	reason := sprintf(
		"policy data version %v is not supported (expected %v)",
		[object.get(config, "version", null), supported_config_version],
	)
}

deny contains reason if {
	object.get(input, "version", null) != supported_input_version
	reason := sprintf(
		"input document version %v is not supported (expected %v)",
		[object.get(input, "version", null), supported_input_version],
	)
}
