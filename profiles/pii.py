"""Personal information a child is about to send: phone numbers, email addresses, street addresses and
postcodes, and messenger or social-media handles given away in a form post or a chat message.

The scan favours precision, since staff see every finding:

- a number is a phone when its shape says so (a `+` or `00` international prefix, a trunk 0, the North
  American 3-3-4 layout) or, for other shapes, when the words before it talk about phoning ("call me on
  555-1234"). Prices, dates, times, year ranges, IP addresses, versions, ISBNs, card-length numbers and
  numbers after "order", "ref", "invoice", "#" ... are never phones.
- a street address is a house number, a capitalised name and a street type word ("12 Acacia Avenue");
  a lower-case name counts only after address talk ("I live at 12 acacia avenue"), because every English
  type word is also an everyday word ("3 hour drive"). French, Spanish, German and Dutch forms too.
- a full UK postcode ("SW1A 1AA") counts on its own: it narrows a child down to a few households. A US
  ZIP code counts only after "City, ST", since on its own it is just a five-digit number.
- a handle is a name given next to a messenger or social platform ("my snap is lily_x", "insta: @lily")
  or an "@name" after follow/add/dm words; "whatsapp me" and "add me on snapchat" count even without a
  name, as an invitation to move the chat somewhere private.

Findings carry a masked value only: enough to tell staff what was sent, never the value itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ALL_KINDS", "PiiFinding", "PiiKind", "find_personal_info"]


class PiiKind(StrEnum):
    """The kinds of personal information looked for."""

    PHONE = "phone"
    EMAIL = "email"
    ADDRESS = "address"
    HANDLE = "handle"


ALL_KINDS: frozenset[PiiKind] = frozenset(PiiKind)


@dataclass(frozen=True, slots=True)
class PiiFinding:
    """One piece of personal information: its kind, its span `text[start:end]`, and a masked form."""

    kind: PiiKind
    start: int
    end: int
    masked: str


def find_personal_info(text: str, kinds: frozenset[PiiKind] = ALL_KINDS) -> tuple[PiiFinding, ...]:
    """Every piece of personal information of the given `kinds` in `text`, sorted by start.

    Findings never overlap: where two would, an email wins over a phone, a phone over an address, an
    address over a handle (so an email address is never also a handle), and a longer finding over a
    shorter one of the same kind.
    """
    found: list[PiiFinding] = []
    # Each scan has a cheap gate, and every regex starts on a literal or a digit so that the regex
    # engine skips ahead without trying each position: a 2 KB message costs well under a millisecond.
    has_at = "@" in text
    if PiiKind.EMAIL in kinds and has_at:
        found += _emails(text)
    digits = sum(map(text.count, "0123456789")) if PiiKind.PHONE in kinds or PiiKind.ADDRESS in kinds else 0
    if PiiKind.PHONE in kinds and digits >= 7:
        found += _phones(text)
    low = _lower(text) if digits or PiiKind.HANDLE in kinds else text
    if PiiKind.ADDRESS in kinds and digits:
        found += _addresses(text, low)
    if PiiKind.HANDLE in kinds:
        found += _handles(text, low, has_at)
    return _without_overlaps(found)


_PRIORITY = {PiiKind.EMAIL: 0, PiiKind.PHONE: 1, PiiKind.ADDRESS: 2, PiiKind.HANDLE: 3}


def _without_overlaps(found: list[PiiFinding]) -> tuple[PiiFinding, ...]:
    if len(found) < 2:
        return tuple(found)
    kept: list[PiiFinding] = []
    for f in sorted(found, key=lambda f: (_PRIORITY[f.kind], f.start - f.end, f.start)):
        if all(f.end <= k.start or k.end <= f.start for k in kept):
            kept.append(f)
    return tuple(sorted(kept, key=lambda f: f.start))


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _lower(text: str) -> str:
    """`text` in lower case with every offset kept, so keyword scans run without IGNORECASE (several
    times faster) and their spans still index `text`."""
    low = text.lower()
    if len(low) == len(text):
        return low  # lower() never shortens a character, so equal lengths mean a 1:1 mapping
    return "".join([c.lower()[0] for c in text])  # "İ" lowers to two characters


def _before(text: str, start: int, width: int = 40) -> str:
    """The lower-case text just before `start`: where context words ("call", "order no.") sit."""
    return text[max(0, start - width) : start].lower()


# ---------------------------------------------------------------------------------------------- email

# From the "@": the domain forwards by regex, the local part backwards.
_EMAIL_DOMAIN = re.compile(r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-]|\.[^\W_])")
_EMAIL_LOCAL = re.compile(r"[\w%+-][\w.%+-]{0,63}$")
# "icon@2x.png" is an image name, not an address: file extensions never end an address in a message.
_FILE_ENDINGS = _words(
    "png jpg jpeg gif svg webp avif bmp ico tif tiff css js mjs json html htm php pdf txt mp3 mp4 mov webm"
    " zip gz tar"
)
_RETINA = re.compile(r"\d+(?:\.\d+)?x\.", re.IGNORECASE)


def _emails(text: str) -> Iterator[PiiFinding]:
    for m in _EMAIL_DOMAIN.finditer(text):
        at = m.start()
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
        if local is None or (local.start() and text[local.start() - 1] in "."):
            continue  # "@name" alone, or ".x@y.com" cut out of something longer
        domain = m.group()[1:]
        tld = domain.rpartition(".")[2]
        if tld.lower() in _FILE_ENDINGS or _RETINA.match(domain):
            continue
        masked = f"{local.group()[0]}***@{domain[0]}***.{tld}"
        yield PiiFinding(PiiKind.EMAIL, local.start(), m.end(), masked)


# ---------------------------------------------------------------------------------------------- phone

# A run of digit groups: the separators are the ones people type inside phone numbers. Possessive, so a
# run that turns out to be glued to a word or a decimal part is dropped whole instead of shortened into
# something that looks like a phone. ASCII digits only: \d would take other scripts' digits too.
_SPACE = "[ \t\u00a0\u202f]"
_PHONE_RUN = re.compile(
    rf"""
    [+(0-9](?<![\w+@#$£€¥/.,-].)(?<![0-9]:.)  # not inside a word, amount, time, reference like ABC-123
    (?:(?<=\()\+?[0-9]|(?<=\+)[0-9]|(?<=[0-9]))  # +44, (020), (+44), 0
    (?:
        [0-9]
      | (?:{_SPACE}?[-./]{_SPACE}?|{_SPACE}|\){_SPACE}?\(?|{_SPACE}?\() [0-9]
    )*+
    (?![\w@%]|[.,:][0-9])                  # not glued to letters, a percent sign, decimals or a time
    """,
    re.VERBOSE,
)
_GROUP = re.compile(r"[0-9]+")
_GAP = re.compile(f"{_SPACE}+(?=[0-9])")
# Words that make the next number a reference, not a phone ("Order #123", "invoice no. 4", "ID: 07...").
_REFERENCE = re.compile(
    r"(?:\b(?:order|ref|reference|invoice|inv|tracking|track|ticket|id|booking|confirmation|account|acct"
    r"|serial|receipt|transaction|txn|case|policy|customer|member|membership|parcel|shipment|consignment"
    r"|item|sku|product|model|part|isbn|issn|version|ver|build|iban|sort code|pin|voucher|coupon|licen[cs]e"
    r"|passport|nhs|vat|registration|reg|postcode|zip)\b\W{0,3}(?:(?:number|num|no|nr|code|id)\b\.?)?"
    r"|(?P<bare>(?<!\w)(?:no|nr|num)\.?|#))\s*[:#=-]?\s*$"
)
_PHONE_WORDS = re.compile(
    r"\b(?:phone|tel|telephone|mobile|mob|cell|cellphone|call|ring|text|txt|sms|whats ?app|number|contact"
    r"|landline|fax|digits|reach me)\b"
)
_CURRENCY_BEFORE = re.compile(r"(?:[$£€¥₹]|\b(?:usd|eur|gbp|chf|inr|rs\.?))\s*$")
_CURRENCY_AFTER = re.compile(r"\s*(?:[€$£¥₹%]|(?:eur|usd|gbp|chf|euros?|dollars?|pounds?|percent|kr)\b)")


def _phones(text: str) -> Iterator[PiiFinding]:
    for m in _PHONE_RUN.finditer(text):
        start, end = m.span()
        if end - start < 7:
            continue  # fewer than seven digits: most numbers in a message end here
        if text[start] == "(" and ")" not in m.group():
            start += 1  # "(call 07911 123456)": the bracket belongs to the sentence
        yield from _phones_in_run(text, start, end)


def _phones_in_run(text: str, start: int, end: int) -> Iterator[PiiFinding]:
    """The phones in one run of digit groups, longest first.

    A run may join a phone to a neighbouring number ("in 2024 07911 123456"), so it is cut at plain
    spaces into chunks, and the longest stretch of chunks that makes a phone is taken from each place.
    """
    gaps = [g for g in _GAP.finditer(text, start, end) if text[g.start() - 1].isdigit()]
    if not gaps:  # most runs: a date, a price, one number
        if _is_phone(text, start, end, whole=True):
            yield PiiFinding(PiiKind.PHONE, start, end, _mask_phone(text[start:end]))
        return
    if _is_reference(_before(text, start)):
        return  # "tracking number: 0123 4567 8901" is a reference in every part
    chunks: list[tuple[int, int]] = []
    chunk_start = start
    for gap in gaps:
        chunks.append((chunk_start, gap.start()))
        chunk_start = gap.end()
    chunks.append((chunk_start, end))
    i = 0
    while i < len(chunks):
        for j in range(min(len(chunks), i + 16) - 1, i - 1, -1):
            s, e = chunks[i][0], chunks[j][1]
            # Only the whole run may lean on phone talk: "my number is 1234 5678 9012 3456" is a card.
            if _is_phone(text, s, e, whole=(s, e) == (start, end)):
                yield PiiFinding(PiiKind.PHONE, s, e, _mask_phone(text[s:e]))
                i = j
                break
        i += 1


def _is_reference(before: str) -> bool:
    ref = _REFERENCE.search(before)
    # "phone no. 0791..." is a phone: a bare "no." or "#" is a reference only without a phone word.
    return ref is not None and not (ref["bare"] and _PHONE_WORDS.search(before[: ref.start()]))


def _is_phone(text: str, start: int, end: int, whole: bool) -> bool:
    value = text[start:end]
    shape = _phone_shape(value)
    if shape is None or (shape == "weak" and not whole):
        return False
    before = _before(text, start)
    if _is_reference(before):
        return False
    if shape != "plus" and (
        _CURRENCY_BEFORE.search(before) or _CURRENCY_AFTER.match(text[end : end + 10].lower())
    ):
        return False
    return shape != "weak" or _PHONE_WORDS.search(before) is not None


def _phone_shape(value: str) -> str | None:
    """How much `value` looks like a phone on its own.

    "plus" for an international number, "strong" for a trunk-0 or North American layout, "weak" for a
    number that is a phone only when the words before it talk about phoning ("text me on 5551234567"),
    None for anything that must never be one (dates, year ranges, versions, IP addresses, ISBNs).
    """
    groups = _GROUP.findall(value)
    digits = "".join(groups)
    seps = _GROUP.split(value)[1:-1]
    plus = value[0] == "+" or value.startswith("(+")
    idd = not plus and digits.startswith("00")  # 0044 ...: the international call prefix
    national = digits[2:] if idd else digits
    if not 7 <= len(national) <= 15 or (idd and national[:1] in ("", "0")):
        return None
    if value.count("(") != value.count(")") or digits.endswith("00000"):
        return None  # unbalanced brackets; round numbers ("+1000000 views")
    sizes = [len(g) for g in groups]
    singles = sizes.count(1)
    if len(groups) > 1 and sizes[-1] == 1:
        return None  # a check digit (ISBN "...-148410-0") or a version's last part
    if singles > (2 if plus else 1):
        return None
    slashes = sum("/" in s for s in seps)
    if slashes and not (slashes == 1 and "/" in seps[0] and digits[0] == "0" and 2 <= sizes[0] <= 5):
        return None  # only the German "030/1234567" uses a slash; dates use several
    dotted = any("." in s for s in seps)
    if not plus:
        if dotted and (
            len(groups) < 3 or min(sizes) < 2 or (len(groups) == 4 and max(sizes) <= 3) or set(seps) != {"."}
        ):
            return None  # decimals, versions ("10.0.19041.1234"), IP addresses, "01.05.2024 1234"
        if len(groups) == 3 and (
            (sizes[0] <= 2 and sizes[1] <= 2 and sizes[2] in (2, 4))
            or (sizes[0] == 4 and sizes[1] <= 2 and sizes[2] <= 2)
        ):
            return None  # dates: 12.03.2025, 2024-05-01, 01 05 24
        if len(groups) > 1 and all(len(g) == 4 and g[:2] in ("19", "20") for g in groups):
            return None  # year ranges: 1990-2024
    if plus:
        return "plus" if digits[0] != "0" else None
    if idd:
        return "strong"
    if digits[0] == "0":
        return "strong" if 9 <= len(digits) <= 12 else None  # trunk prefix: 07911 123456, 020 7946 0958
    if sizes in ([3, 3, 4], [1, 3, 3, 4]) and (len(groups) == 3 or groups[0] == "1"):
        return "strong"  # North America: 555-123-4567, (555) 123-4567, 1-800-555-1234
    return "weak"


def _mask_phone(value: str) -> str:
    """The first two and last three digits, the layout kept: "07911 123456" -> "07*** ***456"."""
    total = sum(c.isdigit() for c in value)
    out: list[str] = []
    seen = 0
    for c in value:
        if c.isdigit():
            seen += 1
            out.append(c if seen <= 2 or seen > total - 3 else "*")
        else:
            out.append(c)
    return "".join(out)


# -------------------------------------------------------------------------------------------- address

_STREET_TYPES = _words(
    "street st road rd avenue ave lane ln drive dr close way court ct place pl crescent cres gardens gdns"
    " terrace tce boulevard blvd grove square sq"
)
_STREET_TYPE_SPELLINGS = "|".join(
    v for t in sorted(_STREET_TYPES, key=len, reverse=True) for v in (t.capitalize(), t, t.upper())
)
_NAME_WORD_REST = r"[^\W\d_]*(?:['’-][^\W\d_]+)*\.?"
_NAME_WORD = r"[^\W\d_]" + _NAME_WORD_REST
_ENGLISH_ADDRESS = re.compile(
    rf"""
    [0-9](?<![\w£$€¥.,:/#-].)[0-9]{{0,4}}(?:[a-zA-Z](?![\w]))?                    # 12, 221b
    (?:\s*[-–]\s*[0-9]{{1,5}}[a-zA-Z]?)?,?\s+                                       # 12-14
    (?P<name>(?:{_NAME_WORD}\s+){{1,3}}?)                                            # Acacia
    (?P<type>{_STREET_TYPE_SPELLINGS})\b\.?                                          # Avenue
    """,
    re.VERBOSE,  # not IGNORECASE: it makes this scan several times slower
)
# The unit before a house number: "Flat 3, 22 High Street".
_UNIT = re.compile(r"\b(?:flat|apartment|apt\.?|unit|suite)\s*[0-9]{1,4}[a-z]?\s*,?\s*$")
_FRENCH_ADDRESS = re.compile(
    rf"""
    [0-9](?<![\w£$€¥.,:/#-].)[0-9]{{0,3}}(?:\s?(?:bis|ter))?,?\s+                 # 12 (bis),
    (?P<type>rue|avenue|av\.|boulevard|bd|place|allée|allee|impasse|chemin|quai|cours|route)\s+
    (?:de\s+la\s+|de\s+l['’]|des\s+|du\s+|de\s+|d['’])?
    (?P<name>{_NAME_WORD}(?:\s(?-i:[A-ZÀ-ÖØ-Þ]){_NAME_WORD_REST}){{0,2}})           # Paix, Saint Michel
    """,
    re.VERBOSE | re.IGNORECASE,
)
# Spanish and Catalan put the number last: calle Mayor 5, Calle de Alcalá 42. Run on the lower-cased text.
_SPANISH_TYPES = ("calle", "c/", "avenida", "avda", "plaza", "pza", "paseo", "carrer", "camino", "ronda")
_SPANISH_ADDRESS = re.compile(
    rf"""
    \b(?P<type>calle|c/|avenida|avda\.?|plaza|pza\.?|paseo|carrer|camino|ronda|travesía)\s*
    (?:de\s+la\s+|de\s+los\s+|de\s+las\s+|del\s+|de\s+)?
    (?P<name>{_NAME_WORD}(?:\s{_NAME_WORD}){{0,3}}?),?\s+(?:n[ºo°]\.?\s*|num\.?\s*|\#\s*)?
    [0-9]{{1,4}}[a-z]?(?![\w.,]?[0-9])
    """,
    re.VERBOSE,
)
# German and Dutch glue the type onto the name (Hauptstraße 5, Lindenweg 7, Kalverstraat 12) or write it
# after an adjective (Berliner Straße 12). Found from the type word, on the lower-cased text.
_GERMANIC_TYPES = ("straße", "strasse", "str.", "weg", "gasse", "allee", "platz", "damm", "straat", "laan")
_GERMANIC_ADDRESS = re.compile(
    r"(?:straße|strasse|str\.|weg|gasse|allee|platz|damm|straat|laan)\s+[0-9]{1,4}[a-z]?(?![\w.,]?[0-9])"
)
_WORD_BEFORE = re.compile(r"([^\W\d_]{3,})\s$")
# A UK unit postcode names a handful of households, so it counts on its own; only real postcode areas,
# so "PS5 2TB" is a console, not Paisley.
_UK_AREAS = _words(
    "AB AL B BA BB BD BH BL BN BR BS BT CA CB CF CH CM CO CR CT CV CW DA DD DE DG DH DL DN DT DY E EC EH EN"
    " EX FK FY G GL GU GY HA HD HG HP HR HS HU HX IG IM IP IV JE KA KT KW KY L LA LD LE LL LN LS LU M ME MK"
    " ML N NE NG NN NP NR NW OL OX PA PE PH PL PO PR RG RH RM S SA SE SG SK SL SM SN SO SP SR SS ST SW SY TA"
    " TD TF TN TQ TR TS TW UB W WA WC WD WF WN WR WS WV YO ZE"
)
# From the district's digit: the area letters before it are checked by hand.
_UK_POSTCODE = re.compile(
    r"[0-9](?<=[A-Za-z][0-9])[A-Za-z0-9]?(?P<space>\s?)[0-9][ABD-HJLNP-UW-Zabd-hjlnp-uw-z]{2}(?![\w-])"
)
# A US ZIP code is a number like any other unless it follows "City, ST".
_US_STATES = _words(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND"
    " OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
)
_US_ZIP = re.compile(rf",\s*(?:{'|'.join(sorted(_US_STATES))})\s+[0-9]{{5}}(?:-[0-9]{{4}})?(?![\w-])")
_CITY_BEFORE = re.compile(r"\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,3}$")
_ADDRESS_TALK = re.compile(
    r"\b(?:live|lives|living|address|addy|house|home|flat|apartment|stay|staying|postcode|zip"
    r"|deliver|come (?:over|round|to)|meet (?:me )?at|i'?m at)\b"
)
_NOT_NAMES = _words(
    """a an the and or but of on in at to for from with by my your his her our their its this that these
    those is are was were be been i me you he she we they it no not so very just only also more most less
    some any all every each other another than then there here what which who how why when where
    hour hours hr hrs min mins minute minutes second seconds day days week weeks month months year years
    mile miles km kilometre kilometres kilometer kilometers metre metres meter meters yard yards foot feet
    lap laps lane lanes way ways time times"""
)
_KEEP_IN_MASK = _STREET_TYPES | _words(
    """flat apartment apt unit suite rue avenue av boulevard bd place allée allee impasse chemin quai cours
    route de la l des du d calle c avenida avda plaza pza paseo carrer camino ronda travesía del los las nº
    no num bis ter straße strasse str weg gasse allee platz"""
)
# Not English words, so a lower-case name after them is still an address: "12 rue de la paix".
_LOOSE_ROMANCE = _words("rue allée allee impasse calle c/ avenida avda avda. carrer")
_STATE_CODES = frozenset(s.lower() for s in _US_STATES)


def _addresses(text: str, low: str) -> Iterator[PiiFinding]:
    for m in _ENGLISH_ADDRESS.finditer(text):
        start = m.start()
        # Every English type word is also an everyday word ("2 long road trips", "3 hour drive"): a
        # lower-case name needs address talk before it ("I live at 12 acacia avenue").
        talk = _ADDRESS_TALK.search(_before(text, start)) is not None
        if _plausible_street_name(m["name"].split(), talk):
            unit = _UNIT.search(low, max(0, start - 24), start)
            yield _address(text, unit.start() if unit else start, m.end())
    for m in _FRENCH_ADDRESS.finditer(text):
        # "5 route ideas", "3 place names": other type words need a proper name or address talk
        loose = m["type"].lower() in _LOOSE_ROMANCE or _ADDRESS_TALK.search(_before(text, m.start()))
        if _plausible_street_name(m["name"].split(), bool(loose)):
            yield _address(text, m.start(), m.end())
    if any(t in low for t in _SPANISH_TYPES):
        for m in _SPANISH_ADDRESS.finditer(low):
            loose = m["type"] in _LOOSE_ROMANCE or _ADDRESS_TALK.search(_before(text, m.start()))
            name = text[m.start("name") : m.end("name")]
            if _plausible_street_name(name.split(), bool(loose)):
                yield _address(text, m.start(), m.end())
    if any(t in low for t in _GERMANIC_TYPES):
        for m in _GERMANIC_ADDRESS.finditer(low):
            start = m.start()
            while start and text[start - 1].isalpha():
                start -= 1  # the rest of the compound: Haupt|straße
            if m.start() - start < 3:
                # a separate type word needs a capitalised word before it: Berliner Straße 12
                word = _WORD_BEFORE.search(text, max(0, start - 30), start)
                if start != m.start() or word is None or not word.group()[0].isupper():
                    continue
                start = word.start()
            yield _address(text, start, m.end())
    for m in _UK_POSTCODE.finditer(text):
        area_end = m.start()
        area_start = area_end - 1
        if area_start and text[area_start - 1].isascii() and text[area_start - 1].isalpha():
            area_start -= 1
        if area_start and (text[area_start - 1].isalnum() or text[area_start - 1] in "_-"):
            continue  # glued to a longer word: ABC1 2DE
        area = text[area_start:area_end]
        value = text[area_start : m.end()]
        inward = value[-3:]
        if inward.islower() and inward[1:] in ("st", "nd", "rd", "th"):
            continue  # "l8 5th": an ordinal
        if area.upper() in _UK_AREAS and (m["space"] or value.isupper()):
            masked = area.upper() + re.sub(r"[0-9A-Za-z]", "*", value[len(area) :])
            yield PiiFinding(PiiKind.ADDRESS, area_start, m.end(), masked)
    for m in _US_ZIP.finditer(text):
        city = _CITY_BEFORE.search(text, max(0, m.start() - 40), m.start())
        if city is not None:
            yield _address(text, city.start(), m.end(), keep=_STATE_CODES)


def _plausible_street_name(words: list[str], lower_case_ok: bool) -> bool:
    """A street name is words that are not function words, units or counters ("3 hour drive"), and
    capitalised unless the type word or address talk around it already says "address"."""
    if not words:
        return False
    for w in words:
        if w.lower().rstrip(".") in _NOT_NAMES:
            return False
        if not lower_case_ok and not w[0].isupper():
            return False
    return True


def _address(text: str, start: int, end: int, keep: frozenset[str] = frozenset()) -> PiiFinding:
    value = text[start:end].rstrip(",. ")
    return PiiFinding(PiiKind.ADDRESS, start, start + len(value), _mask_words(value, keep))


_GERMANIC_SUFFIX = re.compile(r"(?:straße|strasse|str|weg|gasse|allee|platz|damm|straat|laan)$")


def _mask_words(value: str, keep: frozenset[str]) -> str:
    """Numbers masked whole; other words keep their first letter, street-type words stay as they are:
    "Flat 3, 22 High Street" -> "Flat *, ** H*** Street"."""

    def mask(m: re.Match[str]) -> str:
        word = m.group()
        if word.isdigit():
            return "*" * len(word)
        lower = word.lower()
        if lower in _KEEP_IN_MASK or lower in keep:
            return word  # a street type or a state code says "address" without saying whose
        suffix = _GERMANIC_SUFFIX.search(lower)
        stem = word[: suffix.start()] if suffix and suffix.start() > 0 else word
        return stem[0] + "*" * (len(stem) - 1) + word[len(stem) :]

    return re.sub(r"[0-9]+|[^\W\d_]+", mask, value)


# --------------------------------------------------------------------------------------------- handle

_PLATFORMS = {
    "snap": "snapchat",
    "snapchat": "snapchat",
    "insta": "instagram",
    "instagram": "instagram",
    "ig": "instagram",
    "discord": "discord",
    "kik": "kik",
    "telegram": "telegram",
    "whatsapp": "whatsapp",
    "whats app": "whatsapp",
    "tiktok": "tiktok",
    "tik tok": "tiktok",
    "twitter": "twitter",
    "roblox": "roblox",
    "skype": "skype",
    "xbox": "xbox",
    "gamertag": "xbox",
    "psn": "playstation",
    "steam": "steam",
    "twitch": "twitch",
    "facebook": "facebook",
    "fb": "facebook",
    "wechat": "wechat",
    "youtube": "youtube",
}
# Short or everyday platform words ("ig" is also "I guess") need a handle that looks like one.
_NEEDS_HANDLE_SHAPE = frozenset({"ig", "fb", "steam", "xbox", "youtube", "twitch", "roblox"})
_PLATFORM = "|".join(sorted((p.replace(" ", r"\s?") for p in _PLATFORMS), key=len, reverse=True))
_HANDLE_NAME = r"[a-z0-9_](?:[a-z0-9_.]{0,28}[a-z0-9_])?(?:\#[0-9]{4})?"
# All run on the lower-cased text. Platform names are found with str.find, which skips through text many
# times faster than a regex alternation tried at every word.
_PLATFORM_STEMS = tuple(p for p in _PLATFORMS if not any(p != q and p.startswith(q) for q in _PLATFORMS))
_PLATFORM_WORD = re.compile(rf"\b(?:{_PLATFORM})\b")
_HANDLE_AFTER = re.compile(
    rf"""
    (?P<link>(?:\s*(?:[:=]|-(?=\s)|\b(?:user\s?name|name|handle|id|tag|account|acc|is|it'?s|me|on|at)\b))*)
    \s*(?P<at>@)?(?P<name>{_HANDLE_NAME})
    (?![\w@\#]|\.[a-z0-9])
    """,
    re.VERBOSE,
)
# "whatsapp me", "add me on snapchat": asking to move the chat somewhere private, even without a name.
_INVITING = frozenset({"snap", "snapchat", "kik", "whatsapp", "whats app", "telegram", "skype", "insta"})
_ME_AFTER = re.compile(r"\s+me\b")
_ADD_ME_ON_BEFORE = re.compile(r"\badd\s+me\s+on\s+$")
_AT_NAME = re.compile(rf"@(?P<name>{_HANDLE_NAME})(?![\w@\#]|\.[a-z0-9])")
_FOLLOW_WORDS = re.compile(r"\b(?:follow|add|dm|pm|msg|message|hmu|friend|sub|subscribe|check out|find me)\b")
# Words that follow a platform name in ordinary sentences ("my snap is broken", "tiktok is so funny").
_NOT_HANDLES = _words(
    """a an the and or but of on in at to for from with by is are was were be been being am me my you your
    him her his it its it's this that these those there here not no so too very really just still also
    now then when if as up down out off over back broken blocked banned hacked deleted gone dead private
    public new old open closed working lagging slow fast good bad better best boring fun funny cool great
    awesome weird annoying full empty same different mine yours ours fine ok okay down crashed glitching
    server servers account accounts app apps story stories streak streaks filter filters video videos
    chat chats call calls group groups live feed page profile score status message messages link mode
    later tomorrow tonight today soon asap sometime please pls plz lol haha after before pic pics photo"""
) | {p for p in _PLATFORMS if " " not in p}
_TIME = re.compile(r"[0-9]{1,2}(?::[0-9]{2})?(?:am|pm)?", re.IGNORECASE)


def _handles(text: str, low: str, has_at: bool) -> Iterator[PiiFinding]:
    done = 0
    for at in _positions(low, _PLATFORM_STEMS):
        if at < done or (at and low[at - 1].isalnum()):
            continue
        p = _PLATFORM_WORD.match(low, at)
        if p is None:
            continue
        done = p.end()
        word = " ".join(p.group().split())
        platform = _PLATFORMS.get(word, word.replace(" ", ""))
        start, end = p.span()
        asked = _ADD_ME_ON_BEFORE.search(low, max(0, start - 20), start)
        if asked is not None:
            start = asked.start()
        m = _HANDLE_AFTER.match(low, end)
        if m is not None and _plausible_handle(m, word, low, start, asked is not None):
            name = text[m.start("name") : m.end("name")]
            yield _handle(start, m.end(), platform, m["at"], name)
            done = m.end()
            continue
        me = _ME_AFTER.match(low, end) if word in _INVITING else None
        if asked is not None or me is not None:
            yield PiiFinding(PiiKind.HANDLE, start, me.end() if me else end, f"{platform}: (no name given)")
    if has_at:
        for m in _AT_NAME.finditer(low):
            name = m["name"]
            if m.start() and low[m.start() - 1] in _GLUED_TO_AT:
                continue  # an email address, or code
            if name.isdigit() or _TIME.fullmatch(name):
                continue  # "meet @5pm"
            if _FOLLOW_WORDS.search(low, max(0, m.start() - 30), m.start()):
                yield _handle(m.start(), m.end(), None, "@", text[m.start("name") : m.end("name")])


_GLUED_TO_AT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_@.")


def _positions(low: str, needles: tuple[str, ...]) -> list[int]:
    """Where any of `needles` starts in `low`, in order."""
    found: set[int] = set()
    for needle in needles:
        i = low.find(needle)
        while i >= 0:
            found.add(i)
            i = low.find(needle, i + 1)
    return sorted(found)


def _plausible_handle(m: re.Match[str], platform: str, low: str, start: int, asked: bool) -> bool:
    name = m["name"]
    link = m["link"]
    if name.isdigit() or (_TIME.fullmatch(name) and not m["at"]):
        return False  # numbers are the phone scan's: "whatsapp me on 07911 123456"
    # "@name", a digit, "_" or "." inside, or a Discord tag say "this is a handle" whatever comes before.
    if m["at"] or "#" in name or any(c.isdigit() or c in "_." for c in name):
        return True
    if name in _NOT_HANDLES:
        return False
    if ":" in link or "=" in link:
        return True  # "discord: skaterboi"
    if platform in _NEEDS_HANDLE_SHAPE:
        return False
    # A plain word is a handle only after "is", "name", "me", or when asked to add or follow:
    # "my snap is lily", "kik me lily", "add me on snapchat lily".
    asked = asked or _FOLLOW_WORDS.search(low, max(0, start - 20), start) is not None
    return asked or not _LINK_WORDS.isdisjoint(link.split())


_LINK_WORDS = frozenset({"is", "it's", "its", "name", "username", "handle", "id", "tag", "me"})


def _handle(start: int, end: int, platform: str | None, at: str | None, name: str) -> PiiFinding:
    tag = "#****" if "#" in name else ""
    masked = f"{at or ''}{name[0]}***{tag}"
    return PiiFinding(PiiKind.HANDLE, start, end, f"{platform}: {masked}" if platform else masked)
