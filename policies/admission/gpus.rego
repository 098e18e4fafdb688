# GPUs are the scarcest thing in the cluster: cap how many one run may ask for.
package jesus.admission

deny contains reason if {
	ceiling := team_setting("maxGpusPerRun")
	input.run.gpus > ceiling
	reason := sprintf(
		"the run asks for %d GPUs; team \"%s\" may use at most %d per run",
		[input.run.gpus, input.owner.team, ceiling],
	)
}
