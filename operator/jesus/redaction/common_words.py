"""Common English words that start sentences and headings: capitalised, they are still no name.

The name stage only reads text around capitalised words outside this list, so prose without proper
nouns never reaches spaCy. The list holds function words, greetings, weekdays, months and the verbs and
nouns that open tool output and transcripts; it is no gazetteer of names (a name that is also a common
word, such as "Will", is still found when its surname is not).
"""

# One string split on whitespace reads as a word list; a list literal would take a line per word.
COMMON_WORDS: frozenset[str] = frozenset(
    """
    a about above account add added address after afternoon again against agent agents all also although
    always am an and another any anyone anything api april are aren't around as at august back be
    because been before being below best between both build but by call called calls can can't cannot
    card check checked cheers client close closed config configuration could create created current
    customer customers data day days dear debug december delete deleted deploy deployed did didn't do
    does doesn't doing don't done down during each either else email enough error errors even evening
    ever every everyone everything failed false february few file files final find first fix fixed for
    found friday from further get gets got had has have having he hello her here here's hers herself hey
    hi him himself his how however i i'm if in info input inputs instead into invoice is isn't it it's
    its itself january july june just last least less let let's like line lines made make many march may
    maybe me message messages might mine model models monday month more morning most much must my myself
    name names neither never new next no nobody none nor not note notes nothing november now null number
    october of off often ok okay old on once one only open or order other others otherwise our ours
    ourselves out output over own payment pending per perhaps phone please previous ran rather read
    regards release report reports request requests response responses result results run running same
    saturday second see send sent september server service set several she should show shows since
    sincerely so some someone something sometimes start started status step steps still stop stopped
    succeeded success such summary sunday sure task tasks team teams test tests than thank thanks that
    that's the their theirs them themselves then there there's therefore these they they're third this
    those though through thursday thus time to today together tomorrow too tool tools total tried true
    try tuesday under unless until up update updated upon us use used user users using version very via
    warning warnings was wasn't we we're wednesday week well were what what's whatever when where
    whether which while who whom whose why will with within without won't would write written wrote year
    yes yet you you're your yours yourself yourselves
    """.split()  # noqa: SIM905
)
