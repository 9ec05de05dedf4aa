//! A prompt's words, each classified by the part it plays in the question, for the verifier.
//!
//! [`analyze`] lowercases, expands contractions, splits hyphenated words and numbers glued to
//! units ("5kg"), joins phrasal verbs the lexicon knows ("turn off", "get rid of"), and gives
//! each word a [`Kind`]. Closed-class words (numbers, negations, referents, question words,
//! directions, function words) come from the lists below: they are the grammar of a question,
//! which decides who, what, how many and which way; they are not synonyms. Whether two open-class
//! words mean the same is left to the lexicon and the vectors (see `verify`).

use std::{borrow::Cow, sync::LazyLock};

use super::lexicon::{self, FastMap};

/// What a token contributes to a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A quantity or position; `word` is its value: digits, "five" → "5", "twice" → "x2",
    /// "first" → "#1", "a"/"an" before a unit → "1".
    Number,
    /// not, no, never, without…; `word` is "not".
    Negation,
    /// A word that picks out who or what is meant; `word` is its class: "his" → "3p",
    /// "every" → "all", "this" → "dem", "yesterday".
    Referent,
    /// A question word; `word` is what it asks: "when", "where", "how many" → "howmany".
    Question,
    /// "most" or "least" before a word: which end of a scale.
    Degree,
    /// A preposition that gives a direction; `word` is "to", "from" or "than" ("in" before a name
    /// or a unit is "to").
    Direction,
    /// Grammar, pronouns of the asker and the assistant, politeness.
    Function,
    /// A verb that only asks for an answer ("tell", "explain"), or a support verb ("make a
    /// backup"); one side may have it alone.
    Request,
    /// A name, acronym or identifier: capitalized mid-sentence, all caps, or code-like.
    Entity,
    /// Everything else: the words that carry the question.
    Content,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Lowercased; for closed classes, the value or class the word stands for (see [`Kind`]);
    /// a joined two-word lemma is spelt with `_` ("turn_off").
    pub word: Cow<'static, str>,
    pub kind: Kind,
    /// Written with a possessive 's ("the router's").
    pub possessive: bool,
}

impl Token {
    fn new(word: Cow<'static, str>, kind: Kind) -> Self {
        Self {
            word,
            kind,
            possessive: false,
        }
    }
}

/// Contractions, expanded in this order before words are split. Grammar: "can't" is "can not".
/// Not `text_analysis::expand_contractions`: the verifier keeps "'s" (possessive or "is") and
/// matches whole words only, so "'d" in "'default'" stays.
const CONTRACTIONS: &[(&str, &str)] = &[
    ("won't", "will not"),
    ("can't", "can not"),
    ("n't", " not"),
    ("'re", " are"),
    ("'m", " am"),
    ("'ll", " will"),
    ("'ve", " have"),
    ("'d", " would"),
    ("what's", "what is"),
    ("that's", "that is"),
    ("it's", "it is"),
    ("where's", "where is"),
    ("who's", "who is"),
    ("how's", "how is"),
    ("there's", "there is"),
    ("here's", "here is"),
    ("when's", "when is"),
    ("whats", "what is"),
];

/// Ordinals and positions in a sequence (a closed class): which one of a series is meant.
const ORDINALS: &[(&str, &str)] = &[
    ("first", "#1"),
    ("second", "#2"),
    ("third", "#3"),
    ("fourth", "#4"),
    ("fifth", "#5"),
    ("sixth", "#6"),
    ("seventh", "#7"),
    ("eighth", "#8"),
    ("ninth", "#9"),
    ("tenth", "#10"),
    ("last", "#last"),
    ("final", "#last"),
    ("next", "#next"),
    ("previous", "#prev"),
    ("latest", "#latest"),
    ("penultimate", "#pen"),
];

/// Negators and exclusions: they reverse what is asked.
const NEGATIONS: &[&str] = &[
    "not",
    "no",
    "never",
    "without",
    "none",
    "nobody",
    "nothing",
    "neither",
    "nor",
    "cannot",
    "nowhere",
    "except",
    "excluding",
];

/// Determiners, third-person pronouns, quantifiers and deictic time words, by class: they pick
/// out WHO or WHAT is meant ("my project" vs "his project" vs "all projects"). First person and
/// "you" (the assistant) are the default referent of a user's question and carry no mark.
const REFERENTS: &[(&str, &str)] = &[
    ("his", "3p"),
    ("her", "3p"),
    ("hers", "3p"),
    ("him", "3p"),
    ("he", "3p"),
    ("she", "3p"),
    ("their", "3p"),
    ("theirs", "3p"),
    ("them", "3p"),
    ("they", "3p"),
    ("this", "dem"),
    ("that", "dem"),
    ("these", "dem"),
    ("those", "dem"),
    ("all", "all"),
    ("every", "all"),
    ("each", "all"),
    ("whole", "all"),
    ("entire", "all"),
    ("everyone", "all"),
    ("everything", "all"),
    ("everybody", "all"),
    ("any", "any"),
    ("some", "some"),
    ("both", "both"),
    ("either", "either"),
    ("most", "most"),
    ("many", "many"),
    ("few", "few"),
    ("several", "several"),
    ("only", "only"),
    ("other", "other"),
    ("another", "other"),
    ("others", "other"),
    ("same", "same"),
    ("today", "today"),
    ("yesterday", "yesterday"),
    ("tomorrow", "tomorrow"),
    ("tonight", "tonight"),
    ("now", "now"),
    ("current", "now"),
    ("currently", "now"),
    ("recent", "recent"),
    ("recently", "recent"),
    ("ago", "ago"),
];

/// Interrogatives that ask for a specific kind of answer (a time, a place, a person, a reason).
const QUESTION_WORDS: &[(&str, &str)] = &[
    ("when", "when"),
    ("where", "where"),
    ("who", "who"),
    ("whom", "who"),
    ("whose", "whose"),
    ("why", "why"),
];

/// "how" + the word after it: the question it makes ("how many" asks for a count).
const HOW_QUESTIONS: &[(&str, &str)] = &[
    ("many", "howmany"),
    ("much", "howmuch"),
    ("long", "howlong"),
    ("old", "howold"),
    ("far", "howfar"),
    ("often", "howoften"),
    ("big", "howbig"),
    ("large", "howbig"),
    ("fast", "howfast"),
    ("frequently", "howoften"),
];

/// Prepositions of direction and comparison, by the direction they give.
const DIRECTIONS: &[(&str, &str)] = &[
    ("to", "to"),
    ("into", "to"),
    ("onto", "to"),
    ("toward", "to"),
    ("towards", "to"),
    ("from", "from"),
    ("than", "than"),
    // comparison with an amount or a place: "under 500 dollars" is not "over 500 dollars"
    ("over", "over"),
    ("above", "over"),
    ("under", "under"),
    ("below", "under"),
];

/// Articles, auxiliaries, pronouns of the asker and the assistant, prepositions, conjunctions,
/// interrogative pronouns and politeness: the frame of a question, not its subject.
const FUNCTION_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "i",
    "me",
    "my",
    "mine",
    "myself",
    "we",
    "us",
    "our",
    "ours",
    "it",
    "its",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "am",
    "do",
    "does",
    "did",
    "doing",
    "done",
    "can",
    "could",
    "should",
    "would",
    "will",
    "shall",
    "may",
    "might",
    "must",
    "have",
    "has",
    "had",
    "how",
    "what",
    "which",
    "of",
    "for",
    "at",
    "by",
    "with",
    "about",
    "as",
    "there",
    "here",
    "just",
    "also",
    "so",
    "and",
    "or",
    "if",
    "then",
    "than",
    "to",
    "from",
    "in",
    "on",
    "into",
    "onto",
    "up",
    "down",
    "out",
    "off",
    "over",
    "under",
    "via",
    "per",
    "between",
    "among",
    "through",
    "across",
    "within",
    "please",
    "kindly",
    "hey",
    "hi",
    "hello",
    "thanks",
    "thank",
    "you",
    "your",
    "yours",
    "yourself",
    "want",
    "like",
    "wondering",
    "wonder",
    "curious",
    "whether",
    "quick",
    "question",
    "possible",
    "actually",
    "really",
    "very",
    "simply",
    "basically",
    "exactly",
    "ever",
    // "A versus B" compares both ways, as "A and B" joins them
    "versus",
    "vs",
];

/// Verbs (and nouns) of asking: they frame the request ("tell me", "any tips on"), not its
/// subject, so one side may have them and the other not.
const REQUEST_VERBS: &[&str] = &[
    "tell",
    "show",
    "give",
    "list",
    "explain",
    "describe",
    "name",
    "know",
    "help",
    "advice",
    "tips",
    "idea",
    "ideas",
    "suggestion",
    "suggestions",
    "recommend",
    "summarize",
    "summarise",
    "work",
    "convert",
    "calculate",
];

/// Support verbs: in "make a backup", "get rid of", "need an oil change" the noun carries the
/// meaning; alone they ask nothing a matched content word does not.
pub(super) const SUPPORT_VERBS: &[&str] = &[
    "make", "makes", "made", "making", "get", "gets", "got", "getting", "need", "needs", "use",
    "using", "used", "take", "takes", "allowed", "allow", "go",
];

/// Adverb particles of phrasal verbs: "turn" + "off" may be one lemma, though "off" is grammar.
pub(super) const PARTICLES: &[&str] = &["up", "off", "on", "out", "down", "over", "away", "back"];

/// What the closed-class lists say about one word.
#[derive(Debug, Default, Clone, Copy)]
struct Closed {
    number: Option<&'static str>,
    ordinal: Option<&'static str>,
    negation: bool,
    referent: Option<&'static str>,
    question: Option<&'static str>,
    how: Option<&'static str>,
    direction: Option<&'static str>,
    function: bool,
    request: bool,
    support: bool,
    particle: bool,
}

static CLOSED: LazyLock<FastMap<&'static str, Closed>> = LazyLock::new(|| {
    let mut table: FastMap<&'static str, Closed> = FastMap::default();
    let mut pairs = |list: &[(&'static str, &'static str)], set: fn(&mut Closed, &'static str)| {
        for (word, value) in list {
            set(table.entry(word).or_default(), value);
        }
    };
    pairs(text_analysis::NUMBER_WORDS, |c, v| c.number = Some(v));
    pairs(ORDINALS, |c, v| c.ordinal = Some(v));
    pairs(REFERENTS, |c, v| c.referent = Some(v));
    pairs(QUESTION_WORDS, |c, v| c.question = Some(v));
    pairs(HOW_QUESTIONS, |c, v| c.how = Some(v));
    pairs(DIRECTIONS, |c, v| c.direction = Some(v));
    let mut flags = |list: &[&'static str], set: fn(&mut Closed)| {
        for word in list {
            set(table.entry(word).or_default());
        }
    };
    flags(NEGATIONS, |c| c.negation = true);
    flags(FUNCTION_WORDS, |c| c.function = true);
    flags(REQUEST_VERBS, |c| c.request = true);
    flags(SUPPORT_VERBS, |c| c.support = true);
    flags(PARTICLES, |c| c.particle = true);
    table
});

const OPEN: Closed = Closed {
    number: None,
    ordinal: None,
    negation: false,
    referent: None,
    question: None,
    how: None,
    direction: None,
    function: false,
    request: false,
    support: false,
    particle: false,
};

/// Loads the closed-class table and the lexicon now rather than on the first prompt.
pub fn warm() {
    LazyLock::force(&CLOSED);
    lexicon::warm();
}

/// A word as split from the text, before classification.
struct Word<'t> {
    /// Lowercased.
    text: Cow<'t, str>,
    /// Capitalized mid-sentence, or all caps: a name.
    cap: bool,
    /// All caps in a prompt that is not: an acronym ("US"), even if it spells a function word.
    acronym: bool,
    possessive: bool,
    /// The first word of a sentence.
    starts_sentence: bool,
    /// The first word after a comma: "In men's tennis, who has won…".
    after_comma: bool,
    /// The table's own copy of the word and what it says, for a closed-class word.
    closed: Option<(&'static str, &'static Closed)>,
}

impl Word<'_> {
    /// An open-class word: not a number, and in none of the closed classes' lists.
    fn is_open(&self) -> bool {
        self.closed.is_none() && !is_number(&self.text)
    }

    fn class(&self) -> &'static Closed {
        self.closed.map_or(&OPEN, |(_, closed)| closed)
    }

    /// The word as a token's text: the table's or the lexicon's copy when there is one.
    fn interned(&self) -> Cow<'static, str> {
        match self.closed {
            Some((word, _)) => Cow::Borrowed(word),
            None => lexicon::interned(&self.text)
                .map_or_else(|| Cow::Owned(self.text.to_string()), Cow::Borrowed),
        }
    }
}

/// The prompt's tokens (see the module docs).
pub fn analyze(text: &str) -> Vec<Token> {
    let expanded = expand_contractions(text);
    let lower: Cow<'_, str> = if expanded.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(expanded.to_ascii_lowercase())
    } else {
        Cow::Borrowed(expanded.as_ref())
    };
    let mut words = split_words(&expanded, &lower);
    if !expanded.bytes().any(|b| b.is_ascii_lowercase()) {
        // a prompt in capitals has no acronyms to tell apart
        words.iter_mut().for_each(|word| word.acronym = false);
    }
    let mut tokens: Vec<Token> = Vec::with_capacity(words.len());
    let mut phrase = String::new();
    let (mut at, mut sentence_from) = (0, 0);
    // the particle of a split phrasal verb, already in its verb's token
    let mut joined_particle = None;
    while let Some(word) = words.get(at) {
        if word.starts_sentence {
            sentence_from = tokens.len();
        }
        if joined_particle == Some(at) {
            at += 1;
            continue;
        }
        let next = words.get(at + 1);
        if let Some(next) = next
            && let Some((joined, taken)) = join(word, next, words.get(at + 2), &mut phrase)
        {
            let last = words.get(at + taken - 1).unwrap_or(next);
            tokens.push(Token {
                word: Cow::Owned(joined),
                kind: Kind::Content,
                possessive: last.possessive,
            });
            at += taken;
            continue;
        }
        if let Some((joined, particle)) = join_split(&words, at, &mut phrase) {
            tokens.push(Token {
                word: Cow::Owned(joined),
                kind: Kind::Content,
                possessive: false,
            });
            joined_particle = Some(particle);
            at += 1;
            continue;
        }
        at += classify(word, next, words.get(at + 2), &mut tokens, sentence_from);
    }
    why_forms(&mut tokens);
    translation_frame(&mut tokens);
    tokens
}

/// A phrasal verb the lexicon knows, spelt with `_`, and how many words it took: "turned off"
/// → "turn_off" (a verb and a particle), "got rid of" → "get_rid_of" (a verb, a particle or
/// open-class word, and a preposition). Names and closed-class words don't join; the particle
/// stays in the word, so "turn_on" and "turn_off" remain two words.
fn join(
    word: &Word<'_>,
    next: &Word<'_>,
    then: Option<&Word<'_>>,
    phrase: &mut String,
) -> Option<(String, usize)> {
    let this = word.class();
    // numbers, referents and negations keep their class: "a one-off job" counts one
    let verb = !word.cap
        && !this.function
        && this.referent.is_none()
        && !this.negation
        && this.number.is_none()
        && this.ordinal.is_none()
        && !next.cap;
    if !verb {
        return None;
    }
    // "in" is a particle only where no object follows it: "log in", "sign in to Netflix", but
    // "sleep in the car", "work in Canada"
    let particle = next.class().particle || (next.text == "in" && ends_phrase(then));
    let open = next.is_open();
    let preposition = then.filter(|t| !t.cap && t.class().function);
    let lemmas = lexicon::lemmas(&word.text);
    let mut known = |words: &[&str]| {
        lemmas.as_slice().iter().find_map(|lemma| {
            phrase.clear();
            phrase.push_str(lemma);
            for word in words {
                phrase.push(' ');
                phrase.push_str(word);
            }
            lexicon::entry(phrase).map(|_| phrase.replace(' ', "_"))
        })
    };
    if let Some(then) = preposition
        && (particle || open)
        && let Some(joined) = known(&[next.text.as_ref(), then.text.as_ref()])
    {
        return Some((joined, 3));
    }
    if particle {
        return known(&[next.text.as_ref()]).map(|joined| (joined, 2));
    }
    None
}

/// The most words between a verb and its particle: "bring [an item] back", "turn [the
/// heating] off".
const MAX_OBJECT_WORDS: usize = 3;

/// Determiners: they may stand between a direction and its object ("to the …", "from my …"),
/// or in the object of a split phrasal verb.
pub(super) const DETERMINERS: &[&str] = &["the", "a", "an", "my", "our", "your"];

/// A phrasal verb split by its object, spelt with `_`, and where its particle is: "bring an
/// item back" → "bring_back" (the object keeps its own tokens). The particle must end the
/// sentence or come before a preposition, as in "turn the lights off in the kitchen": before a
/// determiner it starts a phrase of its own ("turn the page on the left").
fn join_split(words: &[Word<'_>], at: usize, phrase: &mut String) -> Option<(String, usize)> {
    let verb = words.get(at)?;
    let object_word = |w: &Word<'_>| {
        !w.starts_sentence
            && (w.is_open()
                || DETERMINERS.contains(&w.text.as_ref())
                || w.text == "it"
                || w.class().referent.is_some())
    };
    for particle_at in at + 2..=at + 1 + MAX_OBJECT_WORDS {
        let particle = words.get(particle_at)?;
        if !object_word(words.get(particle_at - 1)?) {
            return None;
        }
        if !particle.class().particle || particle.starts_sentence {
            continue;
        }
        let ends_here = ends_phrase(words.get(particle_at + 1));
        return ends_here
            .then(|| join(verb, particle, None, phrase))
            .flatten()
            .map(|(joined, _)| (joined, particle_at));
    }
    None
}

/// Whether a particle's phrase ends before `after`: at the end of the sentence or before a
/// preposition, not before a determiner or an object ("turn the lights off in the kitchen").
fn ends_phrase(after: Option<&Word<'_>>) -> bool {
    after.is_none_or(|after| {
        let class = after.class();
        after.starts_sentence
            || (class.function
                && class.referent.is_none()
                && !DETERMINERS.contains(&after.text.as_ref()))
    })
}

/// Whether "a" before a unit says "per" rather than "one": at the end of a clause, after
/// anything but a preposition, a copula or a verb of equivalence ("do 20 a day", "earn an
/// hour"; but "in a day", "is a gallon", "make a cup", "convert a cup to…" count one).
fn a_rate(previous: Option<&Token>, then: Option<&Word<'_>>) -> bool {
    const QUANTITY_FRAMES: &[&str] = &[
        "in", "of", "for", "into", "within", "than", "per", "is", "are", "was", "were", "be",
        "make", "makes", "equal", "equals",
    ];
    let clause_ends = then.is_none_or(|t| t.starts_sentence);
    let counts_one =
        |t: &Token| t.kind == Kind::Direction || QUANTITY_FRAMES.contains(&t.word.as_ref());
    clause_ends && previous.is_some_and(|t| !counts_one(t))
}

/// Classifies `word` and pushes its token; returns how many words it took (2 for "how many").
/// `then` is the word after `next`.
fn classify(
    word: &Word<'_>,
    next: Option<&Word<'_>>,
    then: Option<&Word<'_>>,
    tokens: &mut Vec<Token>,
    sentence_from: usize,
) -> usize {
    let text: &str = &word.text;
    let class = word.class();
    let next_class = next.map(Word::class);
    let after_content = tokens
        .last()
        .is_some_and(|t| matches!(t.kind, Kind::Content | Kind::Entity));
    let fixed = |value: &'static str, kind: Kind| Token::new(Cow::Borrowed(value), kind);
    let token = if is_number(text) {
        Token::new(Cow::Owned(text.replace(',', "")), Kind::Number)
    } else if text == "%" {
        // one word, three spellings: "%", "percent", "per cent"
        fixed("percent", Kind::Content)
    } else if text == "per" && next.is_some_and(|n| n.text == "cent") {
        tokens.push(fixed("percent", Kind::Content));
        return 2;
    } else if matches!(text, "a" | "an")
        && next.is_some_and(|n| lexicon::lemmas(&n.text).known_unit())
        && !then.is_some_and(Word::is_open)
        && !a_rate(tokens.last(), then)
    {
        // "a cup" is one cup; in "a standard piano" the unit's spelling modifies a noun
        fixed("1", Kind::Number)
    } else if let Some(value) = class.number.or(class.ordinal) {
        fixed(value, Kind::Number)
    } else if class.negation {
        fixed("not", Kind::Negation)
    } else if matches!(text, "that" | "which") && after_content {
        // a relative pronoun, not a demonstrative
        Token::new(word.interned(), Kind::Function)
    } else if matches!(text, "any" | "some") && next_class.is_some_and(|c| c.request) {
        // "any tips", "some advice": asking, not quantifying
        Token::new(word.interned(), Kind::Function)
    } else if matches!(text, "most" | "least") && next_class.is_some_and(|c| !c.function) {
        Token::new(word.interned(), Kind::Degree)
    } else if let Some(referent) = class.referent {
        fixed(referent, Kind::Referent)
    } else if let Some(question) = class
        .question
        .filter(|_| word.after_comma || asks(&tokens[sentence_from..]))
    {
        fixed(question, Kind::Question)
    } else if class.question.is_some() {
        // a conjunction: "what do I do when it fails"
        Token::new(word.interned(), Kind::Function)
    } else if let Some(how) = next_class.and_then(|c| c.how).filter(|_| text == "how") {
        tokens.push(fixed(how, Kind::Question));
        return 2;
    } else if text == "to" && tokens.last().is_some_and(is_wh_word) {
        // "how to freeze": an infinitive, not a direction
        Token::new(word.interned(), Kind::Function)
    } else if let Some(direction) = class.direction {
        fixed(direction, Kind::Direction)
    } else if text == "in" && expressed_in(next, then) {
        // "in Python", "in pounds": what it is expressed in
        fixed("to", Kind::Direction)
    } else if (class.particle || text == "in") && after_content && ends_phrase(next) {
        // the particle of a phrasal verb the lexicon does not know: "sign out of Zoom" is not
        // "sign in to Zoom"
        Token::new(word.interned(), Kind::Content)
    } else if class.function && !word.acronym {
        Token::new(word.interned(), Kind::Function)
    } else if class.request || class.support {
        Token::new(word.interned(), Kind::Request)
    } else {
        let code_like = text.contains(|c: char| c.is_ascii_digit() || "_#+/.".contains(c));
        Token {
            word: word.interned(),
            kind: if word.cap || code_like {
                Kind::Entity
            } else {
                Kind::Content
            },
            // a measure's genitive names no possessor: "this year's winner", "a day's work"
            possessive: word.possessive && !lexicon::lemmas(text).known_unit(),
        }
    };
    tokens.push(token);
    1
}

/// A question word, asking or not: "to" after it marks an infinitive ("how to", "what to").
fn is_wh_word(token: &Token) -> bool {
    token.kind == Kind::Question
        || matches!(
            token.word.as_ref(),
            "how" | "what" | "which" | "where" | "when" | "who" | "whether" | "why"
        )
}

/// Whether "in" before `next` (and `then`) names what something is expressed in: a name or a
/// unit ("in Python", "in pounds", "in a cup"). Past an article: "a" is never the unit, though
/// it spells one (amperes), so "in a directory" is a place, not a unit.
fn expressed_in(next: Option<&Word<'_>>, then: Option<&Word<'_>>) -> bool {
    let object = match next {
        Some(word) if matches!(word.text.as_ref(), "a" | "an") => then,
        _ => next,
    };
    object.is_some_and(|word| word.cap || lexicon::is_unit(&word.text))
}

/// Whether a question word after `earlier` (its sentence so far) asks the question: nothing
/// it could depend on comes before it ("Tell me when…" asks; "What do I do when…" does not).
fn asks(earlier: &[Token]) -> bool {
    !earlier.iter().any(|t| {
        matches!(
            t.kind,
            Kind::Content | Kind::Entity | Kind::Number | Kind::Question
        ) || matches!(t.word.as_ref(), "what" | "which" | "how")
    })
}

/// Digits, possibly with a decimal point or thousands separators.
fn is_number(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
}

/// "What causes X" asks why X happens; "What is X for?" asks X's purpose (a copula, and no
/// verb in -ing: "what are you waiting for" asks what).
fn why_forms(tokens: &mut Vec<Token>) {
    let copula = |t: &Token| matches!(t.word.as_ref(), "is" | "are" | "was" | "were");
    let what = tokens.iter().position(|t| t.word == "what");
    let purpose = what.filter(|&at| {
        tokens[at + 1..].iter().any(copula)
            && tokens.last().is_some_and(|t| t.word == "for")
            && tokens.len() > at + 3
            && !tokens.iter().any(|t| t.word.ends_with("ing"))
    });
    if let Some(at) = purpose {
        tokens.pop();
        tokens[at] = Token::new(Cow::Borrowed("why"), Kind::Question);
    }
    let mut at = 0;
    while at + 1 < tokens.len() {
        if tokens[at].word == "what"
            && matches!(tokens[at + 1].word.as_ref(), "causes" | "cause" | "caused")
        {
            tokens[at] = Token::new(Cow::Borrowed("why"), Kind::Question);
            tokens.remove(at + 1);
        }
        at += 1;
    }
}

/// "How do you say X in Spanish?" asks what "Translate X into Spanish." asks: a verb of saying
/// or translating, before a prompt that ends in "in"/"into" and a name (the language), frames
/// the request, so either verb, or neither ("X in Spanish?"), asks the same. The language and
/// X still have to match.
fn translation_frame(tokens: &mut [Token]) {
    let ends_in_a_language = match tokens {
        [.., into, language] => {
            into.kind == Kind::Direction && into.word == "to" && language.kind == Kind::Entity
        }
        _ => false,
    };
    if !ends_in_a_language {
        return;
    }
    let saying = |t: &Token| {
        t.kind == Kind::Content
            && matches!(
                t.word.as_ref(),
                "say" | "says" | "said" | "saying" | "translate" | "translated" | "translating"
            )
    };
    if let Some(verb) = tokens.iter_mut().find(|t| saying(t)) {
        *verb = Token::new(Cow::Borrowed("translate"), Kind::Request);
    }
}

/// Curly apostrophes straightened and contractions expanded; borrowed when nothing changed.
fn expand_contractions(text: &str) -> Cow<'_, str> {
    const CURLY: [char; 2] = ['\u{2018}', '\u{2019}'];
    let mut current = if text.contains(CURLY) {
        Cow::Owned(text.replace(CURLY, "'"))
    } else {
        Cow::Borrowed(text)
    };
    let apostrophe = current.contains('\'');
    for (from, to) in CONTRACTIONS {
        if !apostrophe && from.contains('\'') {
            continue;
        }
        if let Some(replaced) = replace_contraction(&current, from, to) {
            current = Cow::Owned(replaced);
        }
    }
    current
}

/// Replaces every occurrence of `from` (any case) with `to`, if there is one; a `from` that
/// starts with a letter must also start a word.
fn replace_contraction(text: &str, from: &str, to: &str) -> Option<String> {
    let (bytes, pattern) = (text.as_bytes(), from.as_bytes());
    // "won't" must start a word; "n't" ends one ("don't"); every contraction ends a word
    // ("'d" is not the start of "'default'", "whats" not of "WhatsApp").
    let word_start =
        pattern.first().is_some_and(u8::is_ascii_alphabetic) && !from.starts_with("n'");
    let mut out: Option<String> = None;
    let (mut copied, mut at) = (0, 0);
    while at + pattern.len() <= bytes.len() {
        let found = bytes[at..at + pattern.len()].eq_ignore_ascii_case(pattern)
            && !bytes
                .get(at + pattern.len())
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && !(word_start
                && text[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_'));
        if found {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 8));
            out.push_str(&text[copied..at]);
            out.push_str(to);
            at += pattern.len();
            copied = at;
        } else {
            at += 1;
        }
    }
    out.map(|mut out| {
        out.push_str(&text[copied..]);
        out
    })
}

fn starts_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Characters a word may contain inside: "node.js", "c++", "don't", "read-only", "a/b".
fn inside_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_.#+/'-".contains(&b)
}

/// Characters a word may end with.
fn ends_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"#+%".contains(&b)
}

/// The words of `original` (with `lower`, its ASCII-lowercased copy, byte for byte), split at
/// spaces and punctuation; sentence ends are remembered so a capital that starts a sentence is
/// not a name.
fn split_words<'t>(original: &'t str, lower: &'t str) -> Vec<Word<'t>> {
    let bytes = original.as_bytes();
    let mut words = Vec::new();
    let (mut at, mut sentence_start, mut after_comma) = (0, true, false);
    while let Some(&b) = bytes.get(at) {
        if starts_word(b) {
            let before = words.len();
            let mut run = at + 1;
            while bytes.get(run).is_some_and(|&b| inside_word(b)) {
                run += 1;
            }
            let end = if bytes.get(run) == Some(&b'%') {
                run + 1
            } else {
                (at + 1..run)
                    .rev()
                    .find(|&k| ends_word(bytes[k]))
                    .map_or(at + 1, |k| k + 1)
            };
            push_parts(original, lower, at, end, sentence_start, &mut words);
            if let Some(first) = words.get_mut(before) {
                first.after_comma = after_comma;
            }
            (sentence_start, after_comma) = (false, false);
            at = end;
        } else if b == b'%' {
            push_parts(original, lower, at, at + 1, sentence_start, &mut words);
            (sentence_start, after_comma) = (false, false);
            at += 1;
        } else {
            if b".?!;:".contains(&b) {
                sentence_start = true;
            }
            after_comma |= b == b',';
            at += 1;
        }
    }
    words
}

/// One matched word, split into its parts: "e-mail" → "email", "read-only" → "read", "only",
/// "5kg" → "5", "kg".
fn push_parts<'t>(
    original: &'t str,
    lower: &'t str,
    start: usize,
    mut end: usize,
    sentence_start: bool,
    words: &mut Vec<Word<'t>>,
) {
    let mut possessive = false;
    if lower[start..end].ends_with("'s") {
        end -= 2;
        possessive = true;
    }
    while end > start && lower.as_bytes()[end - 1] == b'\'' {
        end -= 1;
    }
    let parts = split_parts(original, lower, start, end);
    let last = parts.len().saturating_sub(1);
    for (index, (part, part_lower)) in parts.into_iter().enumerate() {
        let first = sentence_start && index == 0;
        let closed = CLOSED
            .get_key_value(part_lower.as_ref())
            .map(|(word, closed)| (*word, closed));
        words.push(Word {
            cap: is_capitalized(&part, first),
            acronym: is_all_caps(&part),
            text: part_lower,
            possessive: possessive && index == last,
            starts_sentence: first,
            after_comma: false,
            closed,
        });
    }
}

/// The parts of the word `original[start..end]`, each as written and lowercased.
fn split_parts<'t>(
    original: &'t str,
    lower: &'t str,
    start: usize,
    end: usize,
) -> Vec<(Cow<'t, str>, Cow<'t, str>)> {
    let word = &original[start..end];
    let hyphenated = word.contains('-') && !word.bytes().any(|b| b.is_ascii_digit());
    let range = |from: usize, to: usize| {
        (
            Cow::Borrowed(&original[from..to]),
            Cow::Borrowed(&lower[from..to]),
        )
    };
    let mut parts: Vec<(Cow<'t, str>, Cow<'t, str>)> = Vec::new();
    if hyphenated && (joined_in_vocabulary(word) || only_grammar(word)) {
        let joined: String = word.chars().filter(|&c| c != '-').collect();
        let lowered = joined.to_ascii_lowercase();
        parts.push((Cow::Owned(joined), Cow::Owned(lowered)));
    } else if hyphenated {
        let mut offset = start;
        for piece in word.split('-') {
            let (from, to) = (offset, offset + piece.len());
            offset = to + 1;
            if piece.is_empty() {
                continue;
            }
            // a single letter joins the next part: "e-mail"
            match parts.last_mut() {
                Some((kept, kept_lower)) if kept.len() == 1 => {
                    kept.to_mut().push_str(&original[from..to]);
                    kept_lower.to_mut().push_str(&lower[from..to]);
                }
                _ => parts.push(range(from, to)),
            }
        }
    } else if let Some(split) = number_unit_split(word) {
        parts.push(range(start, start + split));
        parts.push(range(start + split, end));
    } else {
        parts.push(range(start, end));
    }
    parts
}

/// Whether the model knows a hyphenated word written solid ("wi-fi" → "wifi").
fn joined_in_vocabulary(word: &str) -> bool {
    let joined: String = word
        .chars()
        .filter(|&c| c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    lexicon::in_vocabulary(&joined)
}

/// Whether every part of a hyphenated word is a function word, a direction or a particle
/// ("to-do", "how-to"): the compound is a word of its own, with no grammar in it, so it is kept
/// whole ("todo"). Numbers, negations and referents keep their parts.
fn only_grammar(word: &str) -> bool {
    let mut parts = word.split('-').filter(|part| !part.is_empty()).peekable();
    parts.peek().is_some()
        && parts.all(|part| {
            CLOSED
                .get(part.to_ascii_lowercase().as_str())
                .is_some_and(|c| {
                    (c.function || c.direction.is_some() || c.particle)
                        && c.number.is_none()
                        && c.ordinal.is_none()
                        && c.referent.is_none()
                        && c.question.is_none()
                        && !c.negation
                })
        })
}

/// Where a number glued to a unit ("5kg", "20%") splits: the unit's offset.
fn number_unit_split(word: &str) -> Option<usize> {
    let bytes = word.as_bytes();
    if !bytes.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let split = bytes
        .iter()
        .position(|&b| !(b.is_ascii_digit() || b == b'.' || b == b','))?;
    bytes[split..]
        .iter()
        .all(|&b| b.is_ascii_alphabetic() || b == b'%')
        .then_some(split)
}

/// A capital that does not start a sentence (other than "I"), or a word in capitals.
fn is_capitalized(part: &str, sentence_start: bool) -> bool {
    let bytes = part.as_bytes();
    let initial = bytes.first().is_some_and(u8::is_ascii_uppercase)
        && !sentence_start
        && !part.eq_ignore_ascii_case("i");
    initial || is_all_caps(part)
}

/// Two letters or more, all capitals ("US", "CLI").
fn is_all_caps(part: &str) -> bool {
    let bytes = part.as_bytes();
    bytes.len() > 1
        && bytes.iter().any(u8::is_ascii_uppercase)
        && !bytes.iter().any(u8::is_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(String, Kind)> {
        analyze(text)
            .into_iter()
            .map(|t| (t.word.into_owned(), t.kind))
            .collect()
    }

    fn words_of(text: &str, kind: Kind) -> Vec<String> {
        analyze(text)
            .into_iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.word.into_owned())
            .collect()
    }

    #[test]
    fn kinds_of_words() {
        use Kind::*;
        let expected: Vec<(String, Kind)> = [
            ("how", Function),
            ("do", Function),
            ("i", Function),
            ("rotate", Content),
            ("the", Function),
            ("api", Entity),
            ("key", Content),
            ("for", Function),
            ("3p", Referent),
            ("project", Content),
        ]
        .into_iter()
        .map(|(w, k)| (w.to_owned(), k))
        .collect();
        assert_eq!(
            kinds("How do I rotate the API key for his project?"),
            expected
        );
    }

    #[test]
    fn numbers_in_digits_words_and_units() {
        assert_eq!(words_of("Give me three tips", Kind::Number), ["3"]);
        assert_eq!(
            words_of("Delete the first row", Kind::Number),
            ["#1"],
            "an ordinal is a position"
        );
        assert_eq!(words_of("Convert 5kg to lb", Kind::Number), ["5"]);
        assert_eq!(words_of("Convert 5kg to lb", Kind::Content), ["kg", "lb"]);
        assert_eq!(
            words_of("How many tablespoons are in a cup?", Kind::Number),
            ["1"],
            "a cup is one cup"
        );
        assert!(words_of("Is a server needed?", Kind::Number).is_empty());
        assert!(
            words_of("How many keys does a standard piano have?", Kind::Number).is_empty(),
            "a unit's spelling before a noun modifies it"
        );
        assert_eq!(words_of("a pound of flour", Kind::Number), ["1"]);
        for text in [
            "How many seconds are in a day?",
            "Convert a cup to tablespoons.",
        ] {
            assert_eq!(words_of(text, Kind::Number), ["1"], "{text}");
        }
        for text in [
            "How many push-ups should a beginner do a day?",
            "How much do nurses earn an hour?",
        ] {
            assert!(
                words_of(text, Kind::Number).is_empty(),
                "a unit's article at a clause's end is a rate: {text}"
            );
        }
        assert_eq!(words_of("3.5 hours", Kind::Number), ["3.5"]);
        for text in ["15% of 80", "15 percent of 80", "15 per cent of 80"] {
            assert_eq!(words_of(text, Kind::Content), ["percent"], "{text}");
        }
        assert_eq!(
            words_of("50 cents per kilo", Kind::Content),
            ["cents", "kilo"]
        );
    }

    #[test]
    fn contractions_negation_and_possessives() {
        assert_eq!(words_of("I can't log in", Kind::Negation), ["not"]);
        assert_eq!(words_of("It won\u{2019}t start", Kind::Negation), ["not"]);
        assert_eq!(words_of("What's new?", Kind::Function), ["what", "is"]);
        let tokens = analyze("How do I open my router's admin page?");
        let router = tokens.iter().find(|t| t.word == "router");
        assert!(router.is_some_and(|t| t.possessive));
        assert!(tokens.iter().filter(|t| t.possessive).count() == 1);
    }

    #[test]
    fn referents_by_class() {
        for (text, class) in [
            ("for his project", "3p"),
            ("for their project", "3p"),
            ("for all projects", "all"),
            ("on every build server", "all"),
            ("this week", "dem"),
            ("errors from today", "today"),
            ("errors from yesterday", "yesterday"),
        ] {
            assert_eq!(words_of(text, Kind::Referent), [class], "{text}");
        }
        assert!(
            words_of("for my project", Kind::Referent).is_empty(),
            "the asker is the default referent"
        );
        assert!(
            words_of("the file that changed", Kind::Referent).is_empty(),
            "a relative pronoun"
        );
    }

    #[test]
    fn request_and_support_verbs() {
        assert_eq!(
            words_of("Any tips for writing a resume?", Kind::Request),
            ["tips"]
        );
        assert!(
            words_of("Any tips for writing a resume?", Kind::Referent).is_empty(),
            "\"any\" before a request asks, it does not quantify"
        );
        assert_eq!(words_of("How do I make a backup?", Kind::Request), ["make"]);
    }

    #[test]
    fn question_words_and_why_forms() {
        assert_eq!(words_of("How many keys?", Kind::Question), ["howmany"]);
        assert_eq!(words_of("When was it built?", Kind::Question), ["when"]);
        assert_eq!(
            words_of("What causes a cold start?", Kind::Question),
            ["why"]
        );
        assert_eq!(
            words_of("Why do containers have cold starts?", Kind::Question),
            ["why"]
        );
        // "what is X for?" asks its purpose; "for" with a verb in -ing or no copula does not
        assert_eq!(
            words_of("What is a health probe for?", Kind::Question),
            ["why"]
        );
        assert!(words_of("What are you waiting for?", Kind::Question).is_empty());
        assert!(words_of("What should I pay for?", Kind::Question).is_empty());
        // "some" or "any" before a word of asking asks; before anything else it quantifies
        assert!(words_of("What are some tips for sleeping?", Kind::Referent).is_empty());
        assert_eq!(words_of("Give me some apples", Kind::Referent), ["some"]);
        assert_eq!(
            words_of("Tell me what an MCP server is used for.", Kind::Question),
            ["why"]
        );
        // "in" is a particle only where no object follows it
        assert_eq!(
            words_of("How do I sign in to Netflix?", Kind::Content),
            ["sign_in"]
        );
        assert_eq!(
            words_of("Can I sleep in the car?", Kind::Content),
            ["sleep", "car"]
        );
        // a particle with no phrase in the lexicon stays a word of the question
        assert_eq!(
            words_of("How do I sign out of Zoom?", Kind::Content),
            ["sign", "out"]
        );
        // after a fronted phrase and a comma, a question word asks
        assert_eq!(
            words_of(
                "In men's tennis, who has won the most titles?",
                Kind::Question
            ),
            ["who"]
        );
        assert!(
            words_of(
                "In men's tennis who has won the most titles?",
                Kind::Question
            )
            .is_empty()
        );
    }

    #[test]
    fn hyphens_and_phrasal_verbs() {
        assert_eq!(
            words_of("How does the e-mail digest work?", Kind::Content),
            ["email", "digest"],
            "one letter joins the next part"
        );
        assert_eq!(
            words_of("Is my web-site on-line?", Kind::Content),
            ["website", "online"],
            "the model knows it written solid"
        );
        assert_eq!(
            words_of("Why is my wi-fi so slow?", Kind::Content),
            ["wi", "fi", "slow"],
            "the parts, when the model does not know the word"
        );
        assert_eq!(
            words_of("a read-only user", Kind::Content),
            ["read", "user"],
            "\"only\" stays a referent"
        );
        assert_eq!(
            words_of("How do I turn off autoscaling?", Kind::Content),
            ["turn_off", "autoscaling"]
        );
        assert_eq!(
            words_of("How much disk space is used?", Kind::Content),
            ["disk", "space"],
            "only phrasal verbs join; \"used\" is a support verb"
        );
        assert_eq!(
            words_of("How do I get rid of mould?", Kind::Content),
            ["get_rid_of", "mould"],
            "a verb, a word and a preposition"
        );
        assert_eq!(
            words_of("We got rid of it", Kind::Content),
            ["get_rid_of"],
            "through an irregular lemma"
        );
        assert_eq!(
            words_of("How do I drop a line in pandas?", Kind::Content),
            ["drop", "line", "pandas"],
            "an idiom with a determiner inside does not join"
        );
        assert_eq!(
            words_of("Can I bring an item back to Target?", Kind::Content),
            ["bring_back", "item"],
            "a particle after a short object"
        );
        assert_eq!(
            words_of("How do I turn it off?", Kind::Content),
            ["turn_off"]
        );
        assert_eq!(
            words_of("Turn the page on the left", Kind::Content),
            ["turn", "page", "left"],
            "before a determiner, \"on\" starts a phrase"
        );
    }

    #[test]
    fn any_text_is_analysed_without_panicking() {
        for text in [
            "",
            "'",
            "'s",
            "--",
            "a-",
            "x--y",
            "5-",
            "%%",
            "\u{2019}s don\u{2019}t",
            "caf\u{e9} na\u{ef}ve Stra\u{df}e \u{130}stanbul \u{212a}",
            "\u{1f600} emoji's \u{301}accent",
            "WON'T it'S",
            "\u{0}\t\n\r",
        ] {
            let tokens = analyze(text);
            assert!(tokens.iter().all(|t| !t.word.is_empty()), "{text:?}");
        }
        assert_eq!(
            words_of("caf\u{e9}", Kind::Content),
            ["caf"],
            "letters are ASCII"
        );
    }

    #[test]
    fn names_directions_and_degree() {
        assert_eq!(
            words_of("Is the flight from London to Madrid direct?", Kind::Entity),
            ["london", "madrid"]
        );
        assert_eq!(
            words_of(
                "Is the flight from London to Madrid direct?",
                Kind::Direction
            ),
            ["from", "to"]
        );
        assert_eq!(words_of("Which city in Canada?", Kind::Direction), ["to"]);
        assert_eq!(words_of("5 kilograms in pounds", Kind::Direction), ["to"]);
        assert!(words_of("in the container", Kind::Direction).is_empty());
        // an article is not the unit "a" (amperes); past it, the name or the unit counts
        assert!(words_of("every file in a directory", Kind::Direction).is_empty());
        assert_eq!(
            words_of("How many grams in a cup?", Kind::Direction),
            ["to"]
        );
        assert_eq!(words_of("in a JavaScript string", Kind::Direction), ["to"]);
        // "to" after a question word marks an infinitive
        assert!(words_of("Show me how to freeze a row", Kind::Direction).is_empty());
        assert!(words_of("I wonder what to say", Kind::Direction).is_empty());
        assert_eq!(
            words_of("How to convert miles to km?", Kind::Direction),
            ["to"]
        );
        assert_eq!(words_of("Install Node.js", Kind::Entity), ["node.js"]);
        // an acronym is a name even when it spells a pronoun, unless the prompt is all caps
        assert_eq!(words_of("100 US dollars", Kind::Entity), ["us"]);
        assert!(words_of("Can you help us?", Kind::Entity).is_empty());
        assert!(words_of("CAN YOU HELP US?", Kind::Entity).is_empty());
        // a compound of grammar words is a word of its own
        assert_eq!(words_of("Make a to-do list", Kind::Content), ["todo"]);
        assert_eq!(words_of("a one-off job", Kind::Number), ["1"]);
        assert_eq!(
            words_of("What is the least expensive month?", Kind::Degree),
            ["least"]
        );
        assert_eq!(
            words_of("Who was the president of the United States?", Kind::Entity),
            ["united", "states"]
        );
    }
}
