"""The synthetic corpus's words: English and German content words with their inflected forms.

The grammar (``tcompress.data.synthetic``) picks from these lists; they are data, kept apart from
the rules that order them. Each list is written compactly as text and parsed once at import:
weak German verbs and regular English plurals are derived by rule, irregular forms are spelled out.
"""

from __future__ import annotations

# Nouns: class (a=animate, t=thing, r=readable, f=food, p=place), English sg[/irregular pl],
# German singular, gender, German plural. Weak masculines (Junge, Löwe) are left out on
# purpose: their -n in every oblique case would need a second declension for little gain.
_NOUNS = """
a man/men Mann m Männer; a woman/women Frau f Frauen; a child/children Kind n Kinder; a girl Mädchen n Mädchen
a teacher Lehrer m Lehrer; a doctor Arzt m Ärzte; a friend Freund m Freunde; a king König m Könige
a queen Königin f Königinnen; a baker Bäcker m Bäcker; a cook Koch m Köche; a dog Hund m Hunde; a cat Katze f Katzen
a horse Pferd n Pferde; a bird Vogel m Vögel; a mouse/mice Maus f Mäuse; a cow Kuh f Kühe; a pig Schwein n Schweine
a fish/fish Fisch m Fische; a sheep/sheep Schaf n Schafe; a sister Schwester f Schwestern; a brother Bruder m Brüder
a mother Mutter f Mütter; a father Vater m Väter; a uncle Onkel m Onkel; a aunt Tante f Tanten
a driver Fahrer m Fahrer; a grandmother Großmutter f Großmütter; a singer Sänger m Sänger; a painter Maler m Maler
a waiter Kellner m Kellner; a thief/thieves Dieb m Diebe; a guest Gast m Gäste; a wolf/wolves Wolf m Wölfe
a fox Fuchs m Füchse; a duck Ente f Enten; a goat Ziege f Ziegen; a donkey Esel m Esel; a frog Frosch m Frösche
a baby Baby n Babys; a pupil Schüler m Schüler; a worker Arbeiter m Arbeiter; a musician Musiker m Musiker
a hunter Jäger m Jäger; a dancer Tänzer m Tänzer; a fisherman/fishermen Fischer m Fischer; a owl Eule f Eulen
a rabbit Kaninchen n Kaninchen; a bee Biene f Bienen; a spider Spinne f Spinnen
a squirrel Eichhörnchen n Eichhörnchen; a writer Schriftsteller m Schriftsteller; t table Tisch m Tische
t chair Stuhl m Stühle; t bed Bett n Betten; t lamp Lampe f Lampen; t door Tür f Türen; t window Fenster n Fenster
t key Schlüssel m Schlüssel; t cup Tasse f Tassen; t plate Teller m Teller; t knife/knives Messer n Messer
t spoon Löffel m Löffel; t fork Gabel f Gabeln; t bottle Flasche f Flaschen; t bag Tasche f Taschen
t box Kiste f Kisten; t clock Uhr f Uhren; t ball Ball m Bälle; t car Auto n Autos; t bicycle Fahrrad n Fahrräder
t boat Boot n Boote; t hat Hut m Hüte; t coat Mantel m Mäntel; t shoe Schuh m Schuhe; t shirt Hemd n Hemden
t dress Kleid n Kleider; t ring Ring m Ringe; t picture Bild n Bilder; t flower Blume f Blumen; t tree Baum m Bäume
t stone Stein m Steine; t pen Stift m Stifte; t computer Computer m Computer; t phone Telefon n Telefone
t basket Korb m Körbe; t umbrella Schirm m Schirme; t mirror Spiegel m Spiegel; t blanket Decke f Decken
t pot Topf m Töpfe; t candle Kerze f Kerzen; t toy Spielzeug n Spielzeuge; t ladder Leiter f Leitern
r book Buch n Bücher; r letter Brief m Briefe; r newspaper Zeitung f Zeitungen; r story Geschichte f Geschichten
r poem Gedicht n Gedichte; r map Karte f Karten; r message Nachricht f Nachrichten; r note Notiz f Notizen
r song Lied n Lieder; r magazine Zeitschrift f Zeitschriften; r list Liste f Listen; f apple Apfel m Äpfel
f bread Brot n Brote; f cake Kuchen m Kuchen; f egg Ei n Eier; f cheese Käse m Käse; f soup Suppe f Suppen
f sausage Wurst f Würste; f pear Birne f Birnen; f banana Banane f Bananen; f potato/potatoes Kartoffel f Kartoffeln
f carrot Karotte f Karotten; f tomato/tomatoes Tomate f Tomaten; f cookie Keks m Kekse; f pizza Pizza f Pizzen
f orange Orange f Orangen; f cherry Kirsche f Kirschen; p garden Garten m Gärten; p park Park m Parks
p house Haus n Häuser; p kitchen Küche f Küchen; p school Schule f Schulen; p forest Wald m Wälder
p city Stadt f Städte; p village Dorf n Dörfer; p street Straße f Straßen; p station Bahnhof m Bahnhöfe
p church Kirche f Kirchen; p room Zimmer n Zimmer; p shop Laden m Läden; p market Markt m Märkte
p library Bibliothek f Bibliotheken; p river Fluss m Flüsse; p lake See m Seen; p field Feld n Felder
p castle Schloss n Schlösser; p hospital Krankenhaus n Krankenhäuser; p office Büro n Büros; p bridge Brücke f Brücken
p hotel Hotel n Hotels; p museum Museum n Museen; p mountain Berg m Berge; p beach Strand m Strände; p farm Hof m Höfe
p zoo Zoo m Zoos; p barn Scheune f Scheunen
"""
# First word of an English compound -> German combining form (the head's gender wins).
_MODIFIERS = """kitchen Küchen; school Schul; garden Garten; house Haus; city Stadt; village Dorf; water Wasser
wood Holz; stone Stein; paper Papier; glass Glas; gold Gold; silver Silber; iron Eisen; leather Leder
winter Winter; summer Sommer; night Nacht; sun Sonnen; rain Regen; snow Schnee; apple Apfel; flower Blumen
book Buch; child Kinder; dog Hunde; bird Vogel; baby Baby; farm Bauern; forest Wald; church Kirchen; hotel Hotel
birthday Geburtstags"""
# English [base:past:participle] German [inf:3sg:past:participle[:1sg]], object spec: a/t/r/f/p
# noun classes, c = "that" clause, - = may stand alone, ! = dative object, S = perfect with "sein".
_VERBS = """
see:saw:seen sehen:sieht:sah:gesehen atrfp; find:found:found finden:findet:fand:gefunden atrf
like mögen:mag:mochte:gemocht:mag atrf; love lieben a; buy:bought:bought kaufen trf; sell:sold:sold verkaufen trf
eat:ate:eaten essen:isst:aß:gegessen -f; cook kochen -f; bring:brought:brought bringen:bringt:brachte:gebracht atrf
carry tragen:trägt:trug:getragen atf; read:read:read lesen:liest:las:gelesen -r; open öffnen tr
write:wrote:written schreiben:schreibt:schrieb:geschrieben -rc; close schließen:schließt:schloss:geschlossen tp
wash waschen:wäscht:wusch:gewaschen at; paint malen -atp; draw:drew:drawn zeichnen -atp; build:built:built bauen tp
hold:held:held halten:hält:hielt:gehalten at; take:took:taken nehmen:nimmt:nahm:genommen atrf; visit besuchen ap
meet:met:met treffen:trifft:traf:getroffen a; help helfen:hilft:half:geholfen a!; follow folgen a!S; thank danken a!
answer antworten a!; call rufen:ruft:rief:gerufen a; hear:heard:heard hören ac; watch beobachten a
catch:caught:caught fangen:fängt:fing:gefangen a; lose:lost:lost verlieren:verliert:verlor:verloren atr
need brauchen atf; clean putzen tp; repair reparieren t; count zählen at; kiss küssen a; greet grüßen a
know:knew:known kennen:kennt:kannte:gekannt ap; know:knew:known wissen:weiß:wusste:gewusst:weiß c
say:said:said sagen c; think:thought:thought denken:denkt:dachte:gedacht c; believe glauben c; hope hoffen c
notice bemerken atc; forget:forgot:forgotten vergessen:vergisst:vergaß:vergessen atrc; dream träumen -c
sing:sang:sung singen:singt:sang:gesungen -
understand:understood:understood verstehen:versteht:verstand:verstanden arc; explain erklären rc
describe beschreiben:beschreibt:beschrieb:beschrieben atrp; steal:stole:stolen stehlen:stiehlt:stahl:gestohlen tf
throw:threw:thrown werfen:wirft:warf:geworfen t; push schieben:schiebt:schob:geschoben at
pull ziehen:zieht:zog:gezogen at; bite:bit:bitten beißen:beißt:biss:gebissen a; order bestellen f; fetch holen atf
taste probieren f; chase jagen a; sleep:slept:slept schlafen:schläft:schlief:geschlafen -; laugh lachen -
cry weinen -; work arbeiten -; wait warten -; swim:swam:swum schwimmen:schwimmt:schwamm:geschwommen -S
run:ran:run rennen:rennt:rannte:gerannt -S; walk laufen:läuft:lief:gelaufen -S
go:went:gone gehen:geht:ging:gegangen -S; come:came:come kommen:kommt:kam:gekommen -S
fall:fell:fallen fallen:fällt:fiel:gefallen -S; dance tanzen -; play spielen -
sit:sat:sat sitzen:sitzt:saß:gesessen -; stand:stood:stood stehen:steht:stand:gestanden -
travel:travelled:travelled reisen -S; fly:flew:flown fliegen:fliegt:flog:geflogen -S
jump springen:springt:sprang:gesprungen -S; live wohnen -; learn lernen -; pray beten:betet:betete:gebetet -
shout schreien:schreit:schrie:geschrien -; speak:spoke:spoken sprechen:spricht:sprach:gesprochen -
grow:grew:grown wachsen:wächst:wuchs:gewachsen -S; drive:drove:driven fahren:fährt:fuhr:gefahren -S
ride:rode:ridden reiten:reitet:ritt:geritten -S; hurry eilen -S; bark bellen:bellt:bellte:gebellt -
win:won:won gewinnen:gewinnt:gewann:gewonnen -
"""
# English German[:inflection stem], by what they describe: people/animals, anything, things only.
_ADJ_ANIMATE = """young jung; happy glücklich; sad traurig; tired müde; hungry hungrig; friendly freundlich
clever klug; funny lustig; lazy faul; rich reich; poor arm; famous berühmt; angry wütend; brave mutig
shy schüchtern; proud stolz; strong stark; sick krank"""
_ADJ_COMMON = """big groß; small klein; old alt; red rot; black schwarz; white weiß; yellow gelb; brown braun
grey grau; beautiful schön; ugly hässlich; good gut; bad schlecht; strange seltsam; pretty hübsch
dark dunkel:dunkl; wet nass; dirty schmutzig; clean sauber; heavy schwer"""
_ADJ_THING = """new neu; blue blau; green grün; long lang; short kurz; cheap billig; expensive teuer:teur
warm warm; cold kalt; soft weich; round rund; dry trocken; fresh frisch; sweet süß; sour sauer:saur; empty leer
full voll; hard hart"""
_MANNER = """quickly schnell; slowly langsam; quietly leise; loudly laut; carefully vorsichtig; happily fröhlich
suddenly plötzlich; again wieder; together zusammen; alone allein; early früh; late spät; well gut
secretly heimlich; patiently geduldig; calmly ruhig; proudly stolz; gently sanft"""
# English=German=tense tag: P past/perfect only, N present only, * any. F and A are frequency
# adverbs, which English puts before the main verb and German keeps in the middle field; only
# F ones read naturally at the front of an English sentence ("Sometimes ..." but not "Always ...").
_TIMES = """yesterday=gestern=P; last week=letzte Woche=P; last year=letztes Jahr=P; last night=gestern Abend=P
this morning=heute Morgen=*; today=heute=*; now=jetzt=N; every day=jeden Tag=*; every morning=jeden Morgen=*
every week=jede Woche=*; in the morning=am Morgen=*; in the evening=am Abend=*; at night=in der Nacht=*
on Monday=am Montag=*; on Tuesday=am Dienstag=*; on Wednesday=am Mittwoch=*; on Thursday=am Donnerstag=*
on Friday=am Freitag=*; on Saturday=am Samstag=*; on Sunday=am Sonntag=*; in the summer=im Sommer=*
in the winter=im Winter=*; at noon=am Mittag=*; often=oft=F; always=immer=A; sometimes=manchmal=F; never=nie=A
usually=meistens=F; rarely=selten=A"""
# English=German=case=noun classes of the prepositional object.
_PREPS = """in=in=dat=p; on=auf=dat=t; under=unter=dat=t; behind=hinter=dat=tp; next to=neben=dat=tp; at=an=dat=p
with=mit=dat=at; from=von=dat=ap; for=für=acc=a; without=ohne=acc=at; through=durch=acc=p; around=um=acc=p
against=gegen=acc=a"""
_CONJ = "because weil; although obwohl; while während; when wenn; if wenn; before bevor; after nachdem; until bis"


def _entries(text: str, sep: str | None = None) -> list[list[str]]:
    return [e.strip().split(sep) for e in text.replace("\n", ";").split(";") if e.strip()]


def _en_plural(word: str, es: tuple[str, ...] = ("s", "sh", "ch", "x")) -> str:
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(es) else "s")


def _en_verb(spec: str) -> tuple[str, ...]:
    base, *irregular = spec.split(":")
    s3 = _en_plural(base, ("s", "sh", "ch", "x", "o"))
    past = base + "d" if base.endswith("e") else s3[:-3] + "ied" if s3.endswith("ies") else base + "ed"
    return (base, s3, *(irregular or (past, past)))


def _de_verb(spec: str) -> tuple[str, ...]:
    """-> (infinitive, 1sg, 3sg, past sg, past pl, participle); weak verbs are derived by rule."""
    inf, *irregular = spec.split(":")
    stem = inf[:-2]
    if irregular:
        s3, past, part = irregular[:3]
        s1 = irregular[3] if len(irregular) > 3 else stem + "e"
    else:
        # "arbeitet", "öffnet": an -e- keeps the ending audible after t/d and consonant+n.
        e = "e" if stem.endswith(("t", "d", "chn", "ffn", "gn")) else ""
        # Inseparable prefixes and -ieren verbs take no ge- ("besucht", "repariert").
        ge = "" if inf.startswith(("be", "ver", "er", "ent", "zer")) or inf.endswith("ieren") else "ge"
        s3, past, part, s1 = stem + e + "t", stem + e + "te", ge + stem + e + "t", stem + "e"
    return inf, s1, s3, past, past + ("n" if past.endswith("e") else "en"), part


NOUNS = [(c, en.partition("/")[0], en.partition("/")[2] or _en_plural(en), de, g, pl)
         for c, en, de, g, pl in _entries(_NOUNS)]
VERBS = [dict(en=_en_verb(en), de=_de_verb(de), obj=obj) for en, de, obj in _entries(_VERBS)]
COPULA = dict(en=("be", "is", "was", "been"), de=("sein", "bin", "ist", "war", "waren", "gewesen"), obj="S")
MODIFIERS = _entries(_MODIFIERS)
# The stem drops a final -e ("müde" -> "müden") or is given ("teuer:teur" -> "teuren").
ADJECTIVES = {name: [(en, de.split(":")[0], de.split(":")[-1].removesuffix("e")) for en, de in _entries(text)]
              for name, text in (("a", _ADJ_ANIMATE), ("c", _ADJ_COMMON), ("t", _ADJ_THING))}
ADJ_FOR_ANIMATE, ADJ_FOR_THING = ADJECTIVES["a"] + ADJECTIVES["c"], ADJECTIVES["c"] + ADJECTIVES["t"]
MANNER = _entries(_MANNER)
TIMES = [(en.split(), de.split(), tag) for en, de, tag in _entries(_TIMES, "=")]
TIMES_BY_TENSE = {t: [x for x in TIMES if x[2] in ("*", "F", "A", "N" if t == "pres" else "P")]
                  for t in ("pres", "past", "perf")}
PREPOSITIONS = _entries(_PREPS, "=")
CONJUNCTIONS = _entries(_CONJ)
