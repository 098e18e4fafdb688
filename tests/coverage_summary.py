"""Print the suite's coverage against its targets: the unit tier alone, the whole suite, each logic module.

Run by `make test` after the suite: `python -m tests.coverage_summary UNIT_TOTAL_FILE`, where the file
holds `coverage report --format=total` taken after the unit tier alone. It reports; it does not fail
the build (docs/testing.md says what the targets are and where the suite stands).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import coverage

UNIT_TARGET = 85.0
WHOLE_TARGET = 90.0
LOGIC_TARGET = 90.0
LOGIC_PREFIX = "operator/jesus/logic/"


def module_percentages(cov: coverage.Coverage) -> dict[str, float]:
    """Percent covered (statements and branches) per measured file, by path relative to the repository."""
    data = cov.get_data()
    root = Path.cwd()
    result: dict[str, float] = {}
    for measured in sorted(data.measured_files()):
        path = Path(measured)
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
        try:
            percent = cov.report(include=[measured], file=io.StringIO())
        except coverage.exceptions.NoDataError:
            continue
        result[relative] = percent
    return result


def main(argv: list[str]) -> int:
    """Print the summary; 0 always, 2 on a usage error."""
    if len(argv) != 1:
        print("usage: python -m tests.coverage_summary UNIT_TOTAL_FILE", file=sys.stderr)
        return 2
    unit = float(Path(argv[0]).read_text().strip())
    cov = coverage.Coverage()
    cov.load()
    whole = cov.report(file=io.StringIO())
    modules = module_percentages(cov)
    logic = {name: percent for name, percent in modules.items() if name.startswith(LOGIC_PREFIX)}
    print(f"coverage: unit tier {unit:.1f} % (target {UNIT_TARGET:g} %)")
    print(f"coverage: whole suite {whole:.1f} % (target {WHOLE_TARGET:g} %)")
    below = {name: percent for name, percent in logic.items() if percent < LOGIC_TARGET}
    print(f"coverage: {len(logic) - len(below)} of {len(logic)} logic modules at {LOGIC_TARGET:g} % or more")
    for name, percent in sorted(below.items(), key=lambda item: item[1]):
        print(f"  {percent:5.1f} %  {name}")
    lowest = sorted(modules.items(), key=lambda item: item[1])[:10]
    print("coverage: the ten least covered modules of the whole suite")
    for name, percent in lowest:
        print(f"  {percent:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
