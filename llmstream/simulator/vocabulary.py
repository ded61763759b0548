"""Words and sentence templates the answer composer draws from.

Templates use slots filled per sentence: {T} the main topic (from the prompt), {t} any topic,
{n}/{n2} a noun, {ns}/{ns2} a plural noun, {a}/{a2} an adjective, {an_a} an adjective with its
article, {v}/{v2} a verb, {vs} its third person, {ving} its -ing form, {adv} an adverb, {code} an
inline code span, {link} a Markdown link, {num} a small number, {pct} a percentage.
Kept apart from the composer so the grammar stays readable and the lists can grow.
"""

from __future__ import annotations

__all__ = [
    "ADJECTIVES",
    "ADVERBS",
    "BULLET_CLAUSES",
    "CJK_ASIDES",
    "CLOSINGS",
    "EMOJI",
    "FALLBACK_TOPICS",
    "GREETINGS",
    "HEADINGS",
    "NOUNS",
    "OPENINGS",
    "SENTENCES",
    "STEPS",
    "STOPWORDS",
    "THINKING",
    "THINKING_OPENERS",
    "VERBS",
    "words",
]


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_SIBILANT = ("s", "sh", "ch", "x")


def _plural(noun: str) -> str:
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(_SIBILANT) else "s")


_NOUNS = """
    approach system pattern constraint workflow component request buffer layer interface schedule
    measurement baseline deployment cache client server queue connection test metric budget default
    boundary decision policy configuration pipeline benchmark review checklist prototype signal
    threshold rollout fallback dependency assumption abstraction invariant contract timeout process
    module library service handler endpoint record event stream parser encoder schema version
    migration index query response backlog worker scheduler retry trace log dashboard alert
    experiment result estimate limit window batch format protocol document example
    strategy tradeoff detail step goal requirement team user reader draft outline summary
    """
NOUNS: tuple[tuple[str, str], ...] = (
    *((noun, _plural(noun)) for noun in words(_NOUNS)),
    ("use case", "use cases"),
    ("edge case", "edge cases"),
    ("failure mode", "failure modes"),
)

ADJECTIVES = tuple(
    words(
        """
    simple robust predictable explicit careful incremental small reliable consistent practical
    flexible expensive subtle common useful clear stable lightweight scalable deterministic
    measurable readable maintainable efficient fragile noisy critical modest separate narrow broad
    realistic boring focused generous strict lenient visible hidden shared local
    """
    )
)

ADVERBS = tuple(
    words(
        """
    usually often rarely typically gradually reliably quietly eventually deliberately
    consistently occasionally surprisingly
    """
    )
)


def _ing(verb: str) -> str:
    if verb in ("log", "split"):  # a short vowel before the last consonant doubles it
        return verb + verb[-1] + "ing"
    return (verb[:-1] if verb.endswith("e") else verb) + "ing"


_VERBS = """
measure cache validate simplify isolate document monitor reuse compare batch retry profile refactor
test limit track review split tune log replay sample version inspect benchmark automate
"""
VERBS: tuple[tuple[str, str, str], ...] = tuple((v, _plural(v), _ing(v)) for v in words(_VERBS))

FALLBACK_TOPICS = (
    "this question", "the system", "the design", "your project", "the problem", "the data",
    "the request", "the workflow",
)  # fmt: skip

STOPWORDS = frozenset(
    words(
        """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no
    nor not now of off on once only or other our out over own please same she should so some such
    than that the their them then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours tell give
    explain describe show write make want need like know think help get use using way ways thing
    things something anything also really much many lot let lets i'm it's what's don't can't how's
    hi hello hey thanks thank briefly short detailed detail quick quickly simple simply example
    examples best good better one two three new kind sort work works working does happen happens
    mean means difference differences start started possible okay sure handle handles work works
    run runs affect affects cause causes improve improves get gets happen
    """
    )
)

GREETINGS = frozenset(words("hi hello hey hola yo greetings morning evening howdy sup"))

OPENINGS = (
    "Good question. {T} is one of those topics that looks {a} from the outside and turns out to be "
    "{a2} once you work with it.",
    "Short answer: it depends on the {n}, but there is {an_a} way to think about {T}.",
    "Here is how I would approach {T}, starting from the {ns} that matter most.",
    "{T} comes down to a few {a} ideas, and the rest follows from them.",
    "Let's break {T} down into parts you can reason about one at a time.",
    "There are several ways to look at {T}; the most useful one starts with the {n}.",
    "Sure. The main thing to understand about {T} is how it handles {ns}.",
    "At its core, {T} is about keeping {ns} {a} while the {n2} around them changes.",
)

SENTENCES = (
    "{T} is easiest to reason about when you treat it as {an_a} {n} rather than a pile of special cases.",
    "In practice, most problems with {t} come from {a} {ns} that nobody measured.",
    "A good first step is to {v} the {n} and see how {t} behaves under load.",
    "The key idea is that {t} should stay {a}, even when the {n} around it changes.",
    "Teams that do well with {t} {adv} start with {an_a} {n} and grow it over time.",
    "It helps to separate the {n} from the {n2}, because they change for different reasons.",
    "You can check this with {code}, which {vs} the {n} without touching the rest of the {n2}.",
    "The guide on {link} covers the details, but the short version is that {t} {vs} {ns}.",
    "For example, {an_a} {n} with {num} {ns2} is usually enough to show whether {t} works.",
    "This matters because {t} {adv} fails in ways that are {a} and hard to reproduce.",
    "There is a trade-off here: {an_a} {n} is easier to {v}, while {an_a2} one is easier to {v2}.",
    "Think of {t} as {an_a} {n}: it takes {ns2} in and hands the result to the next step.",
    "Roughly {pct} of the effort goes into the {n}, so that is where {a} choices pay off.",
    "Don't {v} everything at once; {v2} one {n} at a time and compare the results.",
    "When {t} misbehaves, the cause is {adv} {an_a} {n} rather than the {n2} itself.",
    "A common mistake is to {v} the {n} before you know what {t} actually needs.",
    "Once the {n} is {a}, adding {ns2} becomes a routine change rather than a risky one.",
    "If the {n} is {a}, you can {v} it with confidence and move on to the {n2}.",
    "The {ns} you choose early on tend to shape how {t} evolves later.",
    "It is worth writing down which {ns} you rely on, because {t} will {adv} depend on them.",
    "One way to {v} {t} is to start from {an_a} {n} and add detail only where it is needed.",
    "Measuring before and after each change keeps the discussion about {t} {a} and grounded.",
    "Most of the time, the {a} option wins, simply because it is easier to {v}.",
    "Keep an eye on the {n}: it is the first place where {t} shows strain.",
    "Nothing about {t} requires {an_a} {n}, but it makes {ving} the {ns2} much easier.",
    "You will {adv} find that {ving} the {n} answers more questions than {ving2} the {n2}.",
    "{An_a} {n} also makes onboarding easier, since new people can read {code} and follow along.",
    "In my experience, {t} rewards patience: {v} first, then {v2}, then decide.",
    "The {n} and the {n2} interact, so change one, measure, and only then change the other.",
    "When in doubt, prefer {ns} that are {a} over ones that are clever.",
    "Under the hood, {t} {vs} the {n} in {num} stages, each with its own {n2}.",
    "That is also why the {n} should be {a}: surprises there spread to every {n2}.",
    "Documenting the {n} in {an_a} place saves hours when {t} changes later.",
    "A useful sanity check is to {v} the {n} with {num} inputs and look at the {n2}.",
    "Numbers beat intuition here, so {v} the {n} before arguing about {t}.",
    "Edge cases around {t} are {adv} where the {a} assumptions break.",
    "If you need a reference point, {link} has {an_a} walkthrough of the {n}.",
    "Small, {a} steps make it easy to see which change affected {t}.",
    "Keep the {n} boring and the {n2} {a}; that combination ages well.",
    "The {ns} around {t} are not free, so budget for {ving} them from the start.",
    "A second opinion on the {n} is cheap, and it {adv} catches what the tests miss.",
    "Whatever you pick, make the {n} {a} enough that the next person can {v} it.",
    "It is tempting to {v} the {n} right away, but {ving2} it first tells you more.",
    "Over time, {t} tends to accumulate {ns}, so prune the ones nobody uses.",
    "Automating the {n} turns {t} from a chore into a routine.",
    "The simplest version of {t} that works is {adv} the right starting point.",
    "Ask what happens to the {n} when {t} doubles in size; the answer guides the design.",
    "Treat every {n} as a contract: {a}, written down, and tested.",
    "With {t}, {a} defaults matter more than clever {ns}.",
    "{An_a} {n} is not glamorous, but it keeps {t} predictable.",
    "Logs and metrics from the {n} tell you where {t} spends its time.",
    "Look for the {n} that changes most often; that is where {t} needs care.",
    "If two {ns} disagree, trust the one you can {v}.",
    "The {n} should fail loudly, so that problems with {t} surface early.",
    "Start with {num} {ns}, watch the {n2}, and scale from there.",
    "Good naming helps: call the {n} what it does, and {t} becomes easier to discuss.",
    "Code like {code} is a good place to start reading, since it holds the {n} together.",
    "Sometimes the {a} answer is to {v} less and {v2} more.",
    "Compared with {an_a} {n}, {an_a2} {n2} {adv} trades speed for clarity.",
)

HEADINGS = (
    "Overview", "How {T} works", "Why it matters", "A practical example", "Common pitfalls",
    "Trade-offs to consider", "Getting started", "Key concepts", "Performance notes", "Testing {t}",
    "Putting it together", "Next steps", "Choosing an approach", "What to watch for", "The {n}",
    "Working with {ns}", "A closer look at {t}", "Summary", "Background", "In practice",
)  # fmt: skip

BULLET_CLAUSES = (
    "{v} the {n} before it grows",
    "keep {ns} {a} and easy to {v}",
    "prefer {a} {ns} over clever ones",
    "measure {t} under realistic load",
    "document every {n} you rely on",
    "{v} one {n} at a time",
    "watch the {n} for early warning signs",
    "make the {n} {a} by default",
    "use {code} to {v} the {ns}",
    "budget time for {ving} the {n}",
    "start with {num} {ns} and grow from there",
    "treat the {n} as a contract",
    "review the {ns} after each change",
    "avoid {a} {ns} in the {n}",
    "test the {n} with {a} input",
    "{v} the {ns} that change most often",
    "write down why each {n} exists",
    "ask whether the {n} is still needed",
    "keep the {n} separate from the {n2}",
    "expect {ns} to fail and plan for it",
)

STEPS = (
    "Start by {ving} the {n} so you have a baseline",
    "{V} {an_a} {n} for {t}",
    "Run the {n} and record the {ns2}",
    "Compare the results with your {n}",
    "{V} the {ns} that stand out",
    "Add {an_a} {n} around {code}",
    "Repeat with {num} {ns} to confirm the trend",
    "Write down what changed and why",
    "Roll the change out behind {an_a} {n}",
    "Watch the {n} for a day before moving on",
    "{V} the {n} again and compare",
    "Clean up the {ns} you no longer need",
)

CLOSINGS = (
    "If you tell me more about your {n}, I can make this more specific.",
    "Hope this helps. Happy to go deeper into any part of {T}.",
    "That should be enough to get started; the rest is iteration.",
    "Let me know which part of {T} you would like to explore next.",
    "In short: keep it {a}, measure it, and change one thing at a time.",
    "Feel free to share your {n}, and I'll suggest concrete next steps.",
)

THINKING_OPENERS = (
    "Okay, the user is asking about {T}. Let me think about what they actually need.",
    "Alright, this is a question about {T}. What would actually help here?",
    "Let me start by restating the question: it is about {T}, and probably about the {n} in particular.",
    "Hmm, {T}. There are a few angles to this, so let me sort them out first.",
)

THINKING = (
    "First, I should figure out whether this is about the {n} or the {n2}.",
    "Hmm, {t} could mean a few things here. The most likely reading is the {a} one.",
    "Let me recall how {t} usually works: there is {an_a} {n}, and it {vs} {ns2}.",
    "Wait, I should double-check that. If the {n} is {a}, then the {n2} matters less.",
    "So the answer should probably start with the {n}, then cover the {ns}.",
    "I could mention {code}, since it shows the {n} concretely.",
    "Is there a common mistake to warn about? Yes: people {v} the {n} too early.",
    "Maybe a short list would help, and possibly a small example with {num} {ns}.",
    "Let me also consider edge cases: what if the {n} is empty, or {t} is very large?",
    "Actually, a table comparing the options might be clearer than prose.",
    "I think the structure is: overview, details on the {n}, then next steps.",
    "The user might also care about {ving} {t}, so I'll touch on that briefly.",
    "Alright, I have a plan. Keep it {a} and concrete.",
)

EMOJI = ("🚀", "✨", "💡", "📌", "🔍", "🎯", "👍", "🙂", "📈", "🧪", "✅", "⚡")

# A phrase in another script, with its meaning, to put multi-byte UTF-8 into some answers.
CJK_ASIDES = (
    "In Chinese this is often summed up as 先测量, 再优化 (measure first, then optimize).",
    "Japanese documentation calls this ストリーミング (streaming), which is a handy search term.",
    "A Korean teammate once put it as 천천히, 그러나 확실하게 (slowly, but surely).",
    "There is a Chinese saying that fits: 欲速则不达 (more haste, less speed).",
    "In Japanese, 改善 (kaizen, continuous improvement) describes this habit well.",
    "The Chinese term 数据流 (data flow) shows up in a lot of related material.",
    "Japanese guides describe it as 段階的に (step by step), which is exactly the point.",
)
