# Which models a namespace may use (glob patterns on the model name; `*` allows all). A namespace with
# no entry gets the site default.
package jesus.admission

deny contains reason if {
	patterns := namespace_allowed_models
	some i in reachable_adapter_indexes
	adapter := input.adapters[i]
	not model_allowed(adapter.model, patterns)
	reason := concat("", [
		sprintf(
			"model \"%s\" (adapter \"%s\") is not allowed in namespace \"%s\"",
			[adapter.model, adapter.name, input.run.namespace],
		),
		" (allowed: ", concat(", ", patterns), ")",
	])
}

namespace_allowed_models := namespace_config.allowedModels

namespace_allowed_models := config.allowedModels if not "allowedModels" in object.keys(namespace_config)

model_allowed(model, patterns) if {
	some pattern in patterns
	glob.match(pattern, null, model)
}
