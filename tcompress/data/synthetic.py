"""The embedded default corpus: a seeded English -> German-like parallel corpus.

Every pair comes from a small grammar, so a fresh checkout trains and evaluates offline in
minutes and tests run on real data rather than fixtures. The grammar is deliberately not
monotone, because a corpus a model can solve word by word cannot tell a working attention
model from a broken one, nor show what compression costs: German puts the verb second after
a fronted phrase ("Gestern sah der Mann den Hund."), last in subordinate clauses ("weil die
Frau ein Buch liest"), leaves participles at the clause end, extraposes "dass" clauses,
makes articles and adjective endings agree in gender and case with a noun they precede, and
fuses two-word English compounds into one word ("the kitchen table" -> "der Küchentisch").

The words and their inflected forms are data, in ``tcompress.data.lexicon``; this module is the
grammar that orders them. Only ``random.Random(seed)`` is used (choice/random/randint, whose streams Python keeps
stable), so a seed names the same corpus on every platform and Python >= 3.10.
"""

from __future__ import annotations

import functools
import random

from tcompress.data.lexicon import (ADJ_FOR_ANIMATE, ADJ_FOR_THING, ADJECTIVES, CONJUNCTIONS, COPULA, MANNER,
                                    MODIFIERS, NOUNS, PREPOSITIONS, TIMES, TIMES_BY_TENSE, VERBS)

_P4 = ("1s", "3s", "1p", "3p")
_HABEN, _SEIN = dict(zip(_P4, "habe hat haben haben".split())), dict(zip(_P4, "bin ist sind sind".split()))
_BE = {"pres": dict(zip(_P4, "am is are are".split())), "past": dict(zip(_P4, "was was were were".split()))}
_DEF = {c: dict(zip("mfnp", f.split())) for c, f in
        (("nom", "der die das die"), ("acc", "den die das die"), ("dat", "dem der dem den"))}
_EIN = {c: dict(zip("mfnp", (e.strip("-") for e in f.split()))) for c, f in  # "-" = no ending: "ein Hund"
        (("nom", "- e - e"), ("acc", "en e - e"), ("dat", "em er em en"))}
_CONTRACT = {("in", "dem"): "im", ("an", "dem"): "am", ("von", "dem"): "vom"}
_POSS = [("my", "mein"), ("your", "dein"), ("his", "sein"), ("her", "ihr"), ("our", "unser"), ("their", "ihr")]
_SUBJ_PRON = [("I", "ich", "1s"), ("he", "er", "3s"), ("she", "sie", "3s"), ("we", "wir", "1p"), ("they", "sie", "3p")]
_OBJ_PRON = [("me", "mich", "mir"), ("him", "ihn", "ihm"), ("her", "sie", "ihr"), ("us", "uns", "uns"),
             ("them", "sie", "ihnen")]
_EN_NUM = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
           "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety").split()
_DE_NUM = ("eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn fünfzehn sechzehn "
           "siebzehn achtzehn neunzehn zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig").split()
# Repetition is the weighting: plain choice() keeps the stream stable across Python versions.
_DETS = ["the"] * 6 + ["a"] * 4 + ["my"] * 2 + ["the+"] * 2 + ["n+"] * 2 + ["+", "my+"]
_TENSES = ["pres"] * 2 + ["past"] * 2 + ["perf"]

# Subordinate and relative clauses never take a "that" clause of their own: one level of
# embedding keeps sentences within the length budget and every clause boundary unambiguous.
_SUB_VERBS = [v for v in VERBS if set(v["obj"]) & set("atrfp-")]
_REL_VERBS = [v for v in VERBS if set(v["obj"]) & set("atrfp")]
_LOC_PREPS = [p for p in PREPOSITIONS if p[0] in ("in", "at", "behind", "next to")]  # "was happy in the garden"


@functools.lru_cache(maxsize=None)
def _pool(classes: str) -> list[tuple]:
    return [n for n in NOUNS if n[0] in classes]


def _number(n: int) -> tuple[str, str]:
    if n < 20 or n % 10 == 0:
        i = n - 1 if n < 20 else n // 10 + 17
        return _EN_NUM[i], _DE_NUM[i]
    tens, unit = divmod(n, 10)
    # German reads units before tens and drops the -s of "eins": 21 -> "einundzwanzig".
    return (f"{_EN_NUM[tens + 17]}-{_EN_NUM[unit - 1]}",
            ("ein" if unit == 1 else _DE_NUM[unit - 1]) + "und" + _DE_NUM[tens + 17])


def _adj_ending(strength: str, case: str, g: str) -> str:
    if g == "p" or case == "dat":
        return "e" if strength == "strong" and case != "dat" else "en"
    if strength == "weak":
        return "e" if case == "nom" or g != "m" else "en"
    return {"m": "er" if case == "nom" else "en", "f": "e", "n": "es"}[g]


def _np(rng: random.Random, classes: str, case: str) -> tuple[list[str], list[str], str, str]:
    """A noun phrase -> (English tokens, German tokens, person, German gender or 'p')."""
    cls, en_sg, en_pl, de_sg, g, de_pl = rng.choice(_pool(classes))
    kind = rng.choice(_DETS)
    plural = kind.endswith("+")
    gk = "p" if plural else g
    en_noun, de_noun = [en_pl if plural else en_sg], de_pl if plural else de_sg
    if plural and case == "dat" and de_noun[-1] not in "ns":
        de_noun += "n"
    if cls in "tp" and rng.random() < 0.12:
        mod_en, mod_de = rng.choice(MODIFIERS)
        if mod_en != en_sg:
            en_noun, de_noun = [mod_en] + en_noun, mod_de + de_noun.lower()
    strength = "weak" if kind.startswith("the") else "strong" if kind in ("n+", "+") else "mixed"
    en_adj, de_adj = [], []
    if rng.random() < 0.25:
        a_en, _, a_stem = rng.choice(ADJ_FOR_ANIMATE if cls == "a" else ADJ_FOR_THING)
        en_adj, de_adj = [a_en], [a_stem + _adj_ending(strength, case, gk)]
        if rng.random() < 0.15:
            en_adj, de_adj = ["very"] + en_adj, ["sehr"] + de_adj
    if kind.startswith("the"):
        en_det, de_det = ["the"], [_DEF[case][gk]]
    elif kind == "a":
        en_det, de_det = ["an" if (en_adj + en_noun)[0][0] in "aeiou" else "a"], ["ein" + _EIN[case][gk]]
    elif kind.startswith("my"):
        p_en, p_de = rng.choice(_POSS)
        en_det, de_det = [p_en], [p_de + _EIN[case][gk]]
    elif kind == "n+":
        en_num, de_num = _number(rng.randint(2, 12) if rng.random() < 0.7 else rng.randint(13, 99))
        en_det, de_det = [en_num], [de_num]
    else:
        en_det, de_det = [], []
    return en_det + en_adj + en_noun, de_det + de_adj + [de_noun], "3p" if plural else "3s", gk


def _verb_group(v: dict, tense: str, person: str) -> tuple[list[str], list[str], str, list[str]]:
    """-> (English before a frequency adverb, English after it, German finite, German non-finite)."""
    inf, s1, s3, past, past_pl, part = v["de"]
    sg = person in ("1s", "3s")
    if tense == "perf":
        aux = _SEIN if "S" in v["obj"] else _HABEN
        return ["has" if person == "3s" else "have"], [v["en"][3]], aux[person], [part]
    if v is COPULA:  # English puts frequency adverbs after "be" but before other verbs.
        return [_BE[tense][person]], [], _SEIN[person] if tense == "pres" else past if sg else past_pl, []
    de_fin = {"1s": s1, "3s": s3}.get(person, inf) if tense == "pres" else past if sg else past_pl
    en = v["en"][2] if tense == "past" else v["en"][1] if person == "3s" else v["en"][0]
    return [], [en], de_fin, []


def _clause(rng: random.Random, tense: str, sub: bool) -> dict:
    """One clause as English and German slots; the callers order them for main or sub clauses."""
    c = dict(rel=False, en_rest=[], de_pron=[], de_mid=[], de_pred=[], en_comp=[], de_comp=[], time=None)
    pron_subj = rng.random() < 0.15
    if pron_subj:
        en_subj, de_subj, person = rng.choice(_SUBJ_PRON)
        c["en_subj"], c["de_subj"] = [en_subj], [de_subj]
    else:
        c["en_subj"], c["de_subj"], person, g = _np(rng, "a", "nom")
        if not sub and rng.random() < 0.1:
            # Subject relative clause: German closes it with its verb and a comma, so the main
            # verb follows a verb-final clause, which English never has.
            rv = rng.choice(_REL_VERBS)
            pre, post, fin, non = _verb_group(rv, tense, person)
            classes = "".join(ch for ch in rv["obj"] if ch in "atrfp")
            oe, od, _, _ = _np(rng, classes, "dat" if "!" in rv["obj"] else "acc")
            c["en_subj"] += ["who"] + pre + post + oe
            c["de_subj"] += [",", _DEF["nom"][g]] + od + non + [fin, ","]
            c["rel"] = True
    copula = rng.random() < 0.08
    v = COPULA if copula else rng.choice(_SUB_VERBS if sub else VERBS)
    c["en_pre"], c["en_post"], c["fin"], c["non"] = _verb_group(v, tense, person)
    if copula:
        a_en, a_de, _ = rng.choice(ADJ_FOR_ANIMATE)
        very = rng.random() < 0.2
        c["en_rest"], c["de_pred"] = ["very"] * very + [a_en], ["sehr"] * very + [a_de]
    else:
        spec = v["obj"]
        classes = "".join(ch for ch in spec if ch in "atrfp")
        choice = rng.choice(["obj"] * bool(classes) + ["that"] * ("c" in spec and not sub) + ["-"] * ("-" in spec))
        case = "dat" if "!" in spec else "acc"
        if choice == "obj" and "a" in classes and not pron_subj and rng.random() < 0.15:
            # German pronoun objects move to the front of the middle field, ahead of time adverbs.
            p_en, p_acc, p_dat = rng.choice(_OBJ_PRON)
            c["en_rest"], c["de_pron"] = [p_en], [p_dat if case == "dat" else p_acc]
        elif choice == "obj":
            c["en_rest"], c["de_mid"], _, _ = _np(rng, classes, case)
        elif choice == "that":
            s = _clause(rng, rng.choice(_TENSES), sub=True)
            c["en_comp"], c["de_comp"] = ["that"] + _en(s), [",", "dass"] + _de_sub(s)
        if not c["en_comp"] and rng.random() < 0.2:
            m_en, m_de = rng.choice(MANNER)
            c["en_rest"], c["de_mid"] = c["en_rest"] + [m_en], c["de_mid"] + [m_de]
    if not c["en_comp"] and rng.random() < 0.3:  # a PP before "that ..." would read as part of it
        p_en, p_de, case, classes = rng.choice(_LOC_PREPS if copula else PREPOSITIONS)
        en_np, de_np, _, _ = _np(rng, classes, case)
        if (p_de, de_np[0]) in _CONTRACT:  # "in dem Garten" -> "im Garten"
            p_de, de_np = _CONTRACT[(p_de, de_np[0])], de_np[1:]
        c["en_rest"], c["de_mid"] = c["en_rest"] + p_en.split() + en_np, c["de_mid"] + [p_de] + de_np
    if rng.random() < (0.15 if sub else 0.35):
        c["time"] = rng.choice(TIMES_BY_TENSE[tense])
    return c


def _en(c: dict, fronted: bool = False) -> list[str]:
    time_en, _, tag = c["time"] or ([], [], "")
    freq, phrase = ([], []) if fronted else (time_en, []) if tag in ("F", "A") else ([], time_en)
    return c["en_subj"] + c["en_pre"] + freq + c["en_post"] + c["en_rest"] + phrase + c["en_comp"]


def _middle(c: dict, fronted: bool) -> list[str]:
    time_de = [] if fronted or not c["time"] else c["time"][1]
    return c["de_pron"] + time_de + c["de_mid"] + c["de_pred"] + c["non"]


def _de_main(c: dict, inverted: bool = False, time_fronted: bool = False) -> list[str]:
    """Verb second: after a fronted phrase or clause the finite verb comes before the subject."""
    subj_verb = [c["fin"]] + c["de_subj"] if inverted else c["de_subj"] + [c["fin"]]
    return subj_verb + _middle(c, time_fronted) + c["de_comp"]


def _de_sub(c: dict) -> list[str]:
    """Verb final: the finite verb follows even the participle ("gelesen hat")."""
    return c["de_subj"] + _middle(c, False) + [c["fin"]]


def _finish(tokens: list[str]) -> str:
    text = " ".join(tokens).replace(" ,", ",")
    return text[0].upper() + text[1:] + "."


def _sample_pair(rng: random.Random) -> tuple[str, str]:
    while True:
        tense = rng.choice(_TENSES)
        c = _clause(rng, tense, sub=False)
        s = None
        if not c["en_comp"] and rng.random() < 0.25:
            conj_en, conj_de = rng.choice(CONJUNCTIONS)
            sub_tense = "pres" if conj_en == "if" else tense if rng.random() < 0.7 else rng.choice(_TENSES)
            if conj_en == "when" and sub_tense == "past":
                conj_de = "als"  # a single past event takes "als"; "wenn" is present or repeated
            s = _clause(rng, sub_tense, sub=True)
        # A subject with a relative clause stays in front: inverting it would split it from its comma.
        if s is not None and not c["rel"] and rng.random() < 0.35:
            en = [conj_en] + _en(s) + [","] + _en(c)
            de = [conj_de] + _de_sub(s) + [","] + _de_main(c, inverted=True)
        else:
            if c["time"] and not c["rel"] and rng.random() < {"F": 0.1, "A": 0.0}.get(c["time"][2], 0.4):
                en = c["time"][0] + _en(c, fronted=True)
                de = c["time"][1] + _de_main(c, inverted=True, time_fronted=True)
            else:
                en, de = _en(c), _de_main(c)
            if s is not None:
                en, de = en + [conj_en] + _en(s), de + [",", conj_de] + _de_sub(s)
        src, tgt = _finish(en), _finish(de)
        # Rejection keeps lengths in the 4-30 word band without biasing the grammar's choices.
        if 4 <= len(src.split()) <= 30 and len(tgt.split()) <= 30:
            return src, tgt


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def generate_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """n (english, german) sentence pairs, deterministic for (n, seed).

    Source sentences are distinct, and a longer request extends a shorter one with the same seed.
    """
    _check_size("n", n)
    rng, seen, out = random.Random(seed), set(), []
    # The grammar has far more sentences than any sane request, so running out of draws means
    # the request is absurd (or the grammar broke): fail loudly rather than loop forever.
    for _ in range(20 * n + 1000):
        if len(out) == n:
            return out
        pair = _sample_pair(rng)
        if pair[0] not in seen:
            seen.add(pair[0])
            out.append(pair)
    if len(out) == n:
        return out
    raise ValueError(f"could only generate {len(out)} distinct source sentences of the {n} requested")


def generate_splits(train_size: int, valid_size: int, test_size: int, seed: int) -> dict[str, list[tuple[str, str]]]:
    """{'train': [...], 'valid': [...], 'test': [...]}, deterministic per seed; no source is shared.

    Test is cut first and valid second, so changing train_size never changes the evaluation sets
    and scores stay comparable across training-set sizes.
    """
    for name, value in (("train_size", train_size), ("valid_size", valid_size), ("test_size", test_size)):
        _check_size(name, value)
    pairs = generate_pairs(test_size + valid_size + train_size, seed)
    cut = test_size + valid_size
    return {"train": pairs[cut:], "valid": pairs[test_size:cut], "test": pairs[:test_size]}


def german_verb_forms() -> frozenset[str]:
    """Every German verb form the grammar can emit (lower-case), auxiliaries included."""
    forms = {f.lower() for v in VERBS + [COPULA] for f in v["de"]}
    return frozenset(forms | set(_HABEN.values()) | set(_SEIN.values()))


@functools.lru_cache(maxsize=None)
def lexicon() -> dict[str, frozenset[str]]:
    """English content word -> every lower-case German word it can surface as, for alignment checks.

    Function words (articles, pronouns, conjunctions) are left out: they are too ambiguous to align.
    """
    lex: dict[str, set[str]] = {}
    for _, sg, pl, de, _, de_pl in NOUNS:
        for en in (sg, pl):
            lex.setdefault(en, set()).update((de, de_pl, de_pl if de_pl[-1] in "ns" else de_pl + "n"))
    for v in VERBS:
        for en in v["en"]:
            lex.setdefault(en, set()).update(v["de"])
    for en, base, stem in ADJECTIVES["a"] + ADJECTIVES["c"] + ADJECTIVES["t"]:
        lex.setdefault(en, set()).update([base] + [stem + e for e in ("e", "en", "er", "es")])
    singles = [(en, de) for en, de in MANNER] + [_number(n) for n in range(2, 100)]
    singles += [(en[0], de[0]) for en, de, _ in TIMES if len(en) == len(de) == 1]
    singles += [(en, de) for en, de, _, _ in PREPOSITIONS if " " not in en]
    singles += [(p_en, c) for (p_de, _), c in _CONTRACT.items() for p_en, de, _, _ in PREPOSITIONS if de == p_de]
    for en, de in singles:
        lex.setdefault(en, set()).add(de)
    return {en: frozenset(f.lower() for f in forms) for en, forms in lex.items()}
