# Which models a namespace may use, by adapter: what the adapter is (its provider, its model and where
# it calls), not a model name whatever serves it — an adapter of any provider at any URL may call its
# model "claude-sonnet-4-5". A namespace with no entry gets the site default.
#
# An entry of allowedModels is {"provider": glob, "model": glob, "endpoint": glob}: provider defaults
# to "*"; without "endpoint" the adapter must call its provider's own API (no endpoint of its own) or
# the model the platform serves for it; with one, its endpoint URL must match ("*" matches any, and
# no endpoint at all).
package jesus.admission

deny contains reason if {
	entries := namespace_allowed_models
	some i in reachable_adapter_indexes
	adapter := input.adapters[i]
	not adapter_allowed(adapter, entries)
	reason := concat("", [
		sprintf("model \"%s\" of provider %s", [adapter.model, adapter.provider]),
		" at ", endpoint_text(adapter),
		sprintf(" (adapter \"%s\") is not allowed in namespace \"%s\"", [adapter.name, input.run.namespace]),
		": it matches none of its allowedModels entries",
	])
}

namespace_allowed_models := namespace_config.allowedModels

namespace_allowed_models := config.allowedModels if not "allowedModels" in object.keys(namespace_config)

adapter_allowed(adapter, entries) if {
	some entry in entries
	is_object(entry)
	glob.match(object.get(entry, "provider", "*"), null, adapter.provider)
	glob.match(object.get(entry, "model", ""), null, adapter.model)
	endpoint_allowed(adapter.endpoint, entry)
}

endpoint_allowed(endpoint, entry) if {
	"endpoint" in object.keys(entry)
	glob.match(entry.endpoint, null, endpoint_url_or_empty(endpoint))
}

endpoint_allowed(endpoint, entry) if {
	not "endpoint" in object.keys(entry)
	endpoint.url == null
}

endpoint_allowed(endpoint, entry) if {
	not "endpoint" in object.keys(entry)
	endpoint.served == true
}

endpoint_url_or_empty(endpoint) := endpoint.url if is_string(endpoint.url)

endpoint_url_or_empty(endpoint) := "" if not is_string(endpoint.url)

# Where an adapter's calls go, for reasons; defined for any adapter document, so that a reason is
# never lost (and a denial with it) to a missing field.
endpoint_text(adapter) := url if {
	url := object.get(adapter, ["endpoint", "url"], false)
	is_string(url)
}

endpoint_text(adapter) := "its provider's own API" if object.get(adapter, ["endpoint", "url"], false) == null

endpoint_text(adapter) := "an endpoint the input does not name" if {
	url := object.get(adapter, ["endpoint", "url"], false)
	not is_string(url)
	url != null
}
