# Money helpers: amounts are integer micro-units (1 USD = 1_000_000) everywhere in the input and data.
package jesus.lib.money

# usd(micros) is the amount as a decimal string with its unit: two decimals unless the amount has
# sub-cent digits, which are then kept (six decimals) so that a reason never shows two different
# amounts as the same figure.
#
# Written for both engines (docs/policies.md): quotients go through floor() because %d accepts only
# integers and engines differ on whether 6/2 is one; no `%` operator, which the embedded engine gets
# wrong for some multiples of a million; no helper functions, which it calls slowly.
usd(micros) := sprintf("%d.%02d USD", [dollars, cents]) if {
	dollars := floor(micros / 1000000)
	fraction := micros - (dollars * 1000000)
	cents := floor(fraction / 10000)
	fraction == cents * 10000
}

usd(micros) := sprintf("%d.%06d USD", [dollars, fraction]) if {
	dollars := floor(micros / 1000000)
	fraction := micros - (dollars * 1000000)
	fraction != floor(fraction / 10000) * 10000
}
