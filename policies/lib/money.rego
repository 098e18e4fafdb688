# Money helpers: amounts are integer micro-units (1 USD = 1_000_000) everywhere in the input and data.
package jesus.lib.money

# usd(micros) is the amount as a decimal string with its unit: two decimals unless the amount has
# sub-cent digits, which are then kept (six decimals) so that a reason never shows two different
# amounts as the same figure.
#
# Written for both engines (docs/policies.md): quotients go through floor() because %d accepts only
# integers and engines differ on whether 6/2 is one; no `%` operator, which the embedded engine
# gets wrong for some multiples of a million.
usd(micros) := sprintf("%d.%02d USD", [dollars(micros), floor(cents(micros) / 10000)]) if {
	sub_cent(micros) == 0
}

usd(micros) := sprintf("%d.%06d USD", [dollars(micros), cents(micros)]) if {
	sub_cent(micros) != 0
}

dollars(micros) := floor(micros / 1000000)

# cents(micros) is the fraction of a dollar, in micro-units.
cents(micros) := micros - (dollars(micros) * 1000000)

sub_cent(micros) := cents(micros) - (floor(cents(micros) / 10000) * 10000)
