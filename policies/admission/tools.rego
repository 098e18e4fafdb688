# MCP tool servers are capabilities: a team may hand its agents only the tools the site cleared for it.
package jesus.admission

deny contains reason if {
	some tool in input.run.tools
	allowed := team_settings.allowedTools
	not tool.name in allowed
	reason := concat("", [
		sprintf("MCP tool server \"%s\" is not allowed for team \"%s\"", [tool.name, input.owner.team]),
		" (allowed: ", concat(", ", sort(allowed)), ")",
	])
}
