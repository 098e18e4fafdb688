# Which Lessons runs are offered (docs/reflection.md#which-lessons-are-offered). A lesson is a note a
# team's runs learned; a site may require approval labels on a LongTerm one (a reviewed file in the
# specs repo) before any run sees it, and may keep the unreviewed ShortTerm ones (from reflections, in
# the archive) from runs altogether.
#
# Query `data.jesus.lessons.decision` with the input
#   {"version": "jesus.dev/lesson-input/v1",
#    "lesson": {"name", "namespace", "team", "memory": "ShortTerm" or "LongTerm", "labels": {...}}}
# The answer is {"offer": bool, "reasons": [string]}. The site's values are data.jesus.config.lessons:
#   requireLabels: {key: value}  labels every LongTerm lesson must carry (none by default)
#   offerShortTerm: bool         whether the archive's ShortTerm lessons are offered (true by default)
package jesus.lessons

supported_input_version := "jesus.dev/lesson-input/v1"

default settings := {}

settings := data.jesus.config.lessons if is_object(data.jesus.config.lessons)

decision := {
	"offer": count(withhold) == 0,
	"reasons": sort([reason | some reason in withhold]),
}

withhold contains reason if {
	object.get(input, "version", null) != supported_input_version
	reason := sprintf(
		"input document version %v is not supported (expected %v)",
		[object.get(input, "version", null), supported_input_version],
	)
}

withhold contains reason if {
	input.lesson.memory == "LongTerm"
	some key, value in object.get(settings, "requireLabels", {})
	object.get(input.lesson, ["labels", key], null) != value
	reason := sprintf("LongTerm lesson %v lacks the label %v=%v that the site requires", [input.lesson.name, key, value])
}

withhold contains reason if {
	input.lesson.memory == "ShortTerm"
	object.get(settings, "offerShortTerm", true) == false
	reason := sprintf("ShortTerm lesson %v is not offered: the site offers only reviewed lessons", [input.lesson.name])
}
