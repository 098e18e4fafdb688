"""Whether a foreign apiVersion is really a mistyped one of ours.

The loader skips objects of other API groups (a ConfigMap in the specs tree is fine), but a group that
only *looks* foreign — `jesus.io/v1alpha1`, `Jesus.dev`, `jesus-dev`, `api.jesus.dev` — is a typo
that would make `jesus validate` and `jesus plan` check nothing while the PR goes green. Those are
errors. So is one of our kinds in the core group (`apiVersion: v1alpha1`, `apiVersion: jesus.dev`
without a version): the core group has no such kind.
"""

from __future__ import annotations

from jesus.api import GROUP, KINDS

# How far (in single-character edits) a group may be from ours and still be taken for a typo of it.
# 2 covers two slips anywhere (`jesus.de`, `jesu-dev`); `jesus.io` is caught by its `jesus` label.
MAX_GROUP_DISTANCE = 2
# How far one label of a group may be from "jesus" (`jezus.dev`, `jesu.io`, `apps.jesuss.dev`).
MAX_LABEL_DISTANCE = 1
_OUR_NAME = GROUP.split(".", 1)[0]
_SEPARATORS = str.maketrans({"-": ".", "_": "."})


def edit_distance(left: str, right: str) -> int:
    """The Levenshtein distance: single-character insertions, deletions and substitutions."""
    if len(left) < len(right):
        left, right = right, left
    previous = list(range(len(right) + 1))
    for i, char in enumerate(left, start=1):
        current = [i]
        for j, other in enumerate(right, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other)))
        previous = current
    return previous[-1]


def looks_like_our_group(group: str) -> bool:
    """Whether `group` (not exactly ours) is close enough to `jesus.dev` to be a mistake for it."""
    folded = group.strip().lower()
    if edit_distance(folded, GROUP) <= MAX_GROUP_DISTANCE:
        return True
    if _OUR_NAME in folded:
        return True
    labels = folded.translate(_SEPARATORS).split(".")
    return any(edit_distance(label, _OUR_NAME) <= MAX_LABEL_DISTANCE for label in labels if label)


def lookalike_problem(api_version: str, kind: str) -> str | None:
    """The error for an apiVersion that is not ours but was surely meant to be; None when it is
    plainly another API's (skip it) or exactly ours (validate it)."""
    group, slash, _ = api_version.partition("/")
    if not slash:  # the core group: apiVersion is just a version, e.g. v1
        if kind in KINDS or looks_like_our_group(api_version):
            return (
                f"apiVersion {api_version!r} has no {GROUP} group; "
                f"{kind or 'this object'} needs apiVersion {GROUP}/<version>"
            )
        return None
    if group == GROUP or not looks_like_our_group(group):
        return None
    return f"apiVersion group {group!r} is not {GROUP!r}; a mistyped group is never skipped silently"
