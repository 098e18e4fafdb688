package jesus.lib.money_test

import data.jesus.lib.money

test_whole_dollars_have_two_decimals if money.usd(25000000) == "25.00 USD"

test_cents_are_kept if money.usd(3500000) == "3.50 USD"

test_sub_cent_amounts_keep_six_decimals if money.usd(25004000) == "25.004000 USD"

test_zero if money.usd(0) == "0.00 USD"

test_large_multiples_of_a_million if money.usd(30000000) == "30.00 USD"

test_sub_cent_only if money.usd(1) == "0.000001 USD"

test_amounts_past_two_to_the_31_whole_units if money.usd(5000000000000000) == "5000000000.00 USD"

test_largest_spec_amount if money.usd(999999999999999999) == "999999999999.999999 USD"

test_negative_amount if money.usd(-1500000) == "-1.50 USD"
