package jesus.lessons_test

import data.jesus.lessons

lesson(memory, labels) := {
	"version": "jesus.dev/lesson-input/v1",
	"lesson": {"name": "l-1", "namespace": "ml", "team": "ml", "memory": memory, "labels": labels},
}

approval := {"requireLabels": {"jesus.dev/approved": "true"}}

test_a_site_value_that_is_not_an_object_is_no_value if {
	lessons.decision.offer with input as lesson("LongTerm", {}) with data.jesus.config.lessons as "all"
}

test_every_lesson_is_offered_without_site_values if {
	lessons.decision == {"offer": true, "reasons": []} with input as lesson("LongTerm", {})
		with data.jesus.config as {}
	lessons.decision.offer with input as lesson("ShortTerm", {}) with data.jesus.config as {}
}

test_a_long_term_lesson_without_the_approval_label_is_withheld if {
	lessons.decision == {
		"offer": false,
		"reasons": ["LongTerm lesson l-1 lacks the label jesus.dev/approved=true that the site requires"],
	} with input as lesson("LongTerm", {"jesus.dev/approved": "false"})
		with data.jesus.config.lessons as approval
}

test_a_long_term_lesson_with_the_approval_label_is_offered if {
	lessons.decision.offer with input as lesson("LongTerm", {"jesus.dev/approved": "true", "x": "y"})
		with data.jesus.config.lessons as approval
}

test_required_labels_do_not_apply_to_short_term_lessons if {
	lessons.decision.offer with input as lesson("ShortTerm", {}) with data.jesus.config.lessons as approval
}

test_short_term_lessons_can_be_kept_from_runs if {
	lessons.decision == {
		"offer": false,
		"reasons": ["ShortTerm lesson l-1 is not offered: the site offers only reviewed lessons"],
	} with input as lesson("ShortTerm", {}) with data.jesus.config.lessons as {"offerShortTerm": false}
}

test_another_input_version_is_withheld if {
	result := lessons.decision with input as {"version": "v0", "lesson": {}}
	not result.offer
	result.reasons == ["input document version v0 is not supported (expected jesus.dev/lesson-input/v1)"]
}
