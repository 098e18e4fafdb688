# GPUs are the scarcest thing in the cluster. A run occupies the GPUs of the self-hosted model serving
# it (one replica's worth per call); cap how many GPUs per replica the models a team's runs reach may use.
package jesus.admission

deny contains reason if {
	ceiling := team_settings.maxGpusPerRun
	some i in reachable_adapter_indexes
	adapter := input.adapters[i]
	adapter.gpus.count > ceiling
	reason := sprintf(
		"model adapter \"%s\" serves on %d GPUs per replica; runs of team \"%s\" may use at most %d",
		[adapter.name, adapter.gpus.count, input.owner.team, ceiling],
	)
}
