# Money helpers: amounts are integer micro-units (1 USD = 1_000_000) everywhere in the input and data.
package jesus.lib.money

# usd(micros) is the amount as a decimal string with its unit: two decimals unless the amount has
# sub-cent digits, which are then kept (six decimals) so that a reason never shows two different
# amounts as the same figure.
#
# Written for both engines (docs/policies.md) on the amount's digits rather than on arithmetic: the
# embedded engine's sprintf("%d") wraps past 2^31 and its division rounds past 2^53, and a spec may
# write amounts up to 999999999999.999999. format_int is exact in both; the digits carry no escapes,
# so counting and slicing them is safe. The embedded engine's sprintf quotes a format_int (or concat)
# result, but not a substring of one. No helper functions, which it calls slowly.
usd(micros) := sprintf("%s%s.%s USD", [sign, units, decimals]) if {
	sign := {true: "-", false: ""}[micros < 0]
	digits := format_int(abs(micros), 10)
	zeros := substring("000000", 0, max([0, 7 - count(digits)]))
	padded := sprintf("%s%s", [zeros, substring(digits, 0, count(digits))])
	split := count(padded) - 6
	units := substring(padded, 0, split)
	fraction := substring(padded, split, 6)
	decimals := {true: substring(fraction, 0, 2), false: fraction}[endswith(fraction, "0000")]
}
