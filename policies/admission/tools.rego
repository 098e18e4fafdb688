# MCP tool servers are capabilities: a team may hand its agents only the tool servers the site cleared
# for it. A server is known by what it is — the command it runs (with its arguments and the names of
# the environment variables it gets) or the URL it is reached at — never by the name the run gives it:
# a run may call anything "filesystem".
#
# An entry of allowedToolServers is either {"url": U} (the server's URL, exactly) or
# {"command": C, "args": [glob, ...], "env": [name, ...]}: the command exactly, one glob pattern per
# argument (as many as the run passes; none when "args" is left out), and the environment variable
# names the run may set (none when "env" is left out: PYTHONPATH or LD_PRELOAD change what runs).
package jesus.admission

deny contains reason if {
	some tool in input.run.tools
	allowed := team_settings.allowedToolServers
	not tool_server_allowed(tool, allowed)
	reason := concat("", [
		sprintf("MCP tool server \"%s\" is not allowed for team \"%s\": ", [tool.name, input.owner.team]),
		tool_identity(tool),
		" is on none of the team's allowedToolServers",
	])
}

tool_server_allowed(tool, entries) if {
	http_identity(tool)
	some entry in entries
	is_object(entry)
	object.get(entry, "url", null) == tool.url
}

tool_server_allowed(tool, entries) if {
	stdio_identity(tool)
	some entry in entries
	is_object(entry)
	object.get(entry, "command", null) == tool.command
	patterns := object.get(entry, "args", [])
	count(patterns) == count(tool.args)
	count([i | some i; tool.args[i]; not glob.match(patterns[i], null, tool.args[i])]) == 0
	env := object.get(entry, "env", [])
	count([name | some name in tool.envNames; not name in env]) == 0
}

tool_identity(tool) := concat("", ["url ", tool.url]) if http_identity(tool)

tool_identity(tool) := concat("", [
	"command \"", concat(" ", array.concat([tool.command], tool.args)), "\"",
	environment_note(tool.envNames),
]) if stdio_identity(tool)

# A server whose document says neither (only a hand-written input can): still denied.
tool_identity(tool) := "a server with neither a command nor a url" if {
	not http_identity(tool)
	not stdio_identity(tool)
}

http_identity(tool) if {
	tool.transport == "http"
	is_string(tool.url)
}

stdio_identity(tool) if {
	tool.transport == "stdio"
	is_string(tool.command)
	is_array(tool.args)
	is_array(tool.envNames)
}

environment_note(names) := "" if count(names) == 0

environment_note(names) := concat("", [" with environment ", concat(", ", names)]) if count(names) > 0
