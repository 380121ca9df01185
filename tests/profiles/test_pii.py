"""Personal information a child is about to send: what counts, what never does, and what staff see."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiles.pii import ALL_KINDS, PiiFinding, PiiKind, find_personal_info

PHONE, EMAIL, ADDRESS, HANDLE = PiiKind.PHONE, PiiKind.EMAIL, PiiKind.ADDRESS, PiiKind.HANDLE


def spans(text: str, kinds: frozenset[PiiKind] = ALL_KINDS) -> list[tuple[PiiKind, str]]:
    return [(f.kind, text[f.start : f.end]) for f in find_personal_info(text, kinds)]


# (text, the one finding's kind, its text)
TRUE_POSITIVES = [
    # phones: international
    ("+44 7911 123456", PHONE, "+44 7911 123456"),
    ("+447911123456", PHONE, "+447911123456"),
    ("+1 (555) 123-4567", PHONE, "+1 (555) 123-4567"),
    ("+33 6 12 34 56 78", PHONE, "+33 6 12 34 56 78"),
    ("+49 30 12345678", PHONE, "+49 30 12345678"),
    ("+91 98765 43210", PHONE, "+91 98765 43210"),
    ("+44 (0)20 7946 0958", PHONE, "+44 (0)20 7946 0958"),
    ("(+44) 7911 123456", PHONE, "(+44) 7911 123456"),
    ("0044 7911 123456", PHONE, "0044 7911 123456"),
    # phones: national, with a trunk 0
    ("07911 123456", PHONE, "07911 123456"),
    ("07911123456", PHONE, "07911123456"),
    ("(020) 7946 0958", PHONE, "(020) 7946 0958"),
    ("020-7946-0958", PHONE, "020-7946-0958"),
    ("06 12 34 56 78", PHONE, "06 12 34 56 78"),
    ("06.12.34.56.78", PHONE, "06.12.34.56.78"),
    ("030/12345678", PHONE, "030/12345678"),
    # phones: North American layout
    ("555-123-4567", PHONE, "555-123-4567"),
    ("555.123.4567", PHONE, "555.123.4567"),
    ("(555) 123-4567", PHONE, "(555) 123-4567"),
    ("1-800-555-1234", PHONE, "1-800-555-1234"),
    # phones: other shapes, only when the words before talk about phoning
    ("call me on 555-1234", PHONE, "555-1234"),
    ("text me 5551234567", PHONE, "5551234567"),
    ("my number is 612 345 678", PHONE, "612 345 678"),
    ("whatsapp: 9123 4567", PHONE, "9123 4567"),
    # phones in sentences
    ("ring me later on 07911 123456.", PHONE, "07911 123456"),
    ("phone no. 07911 123456", PHONE, "07911 123456"),  # "no." after a phone word is not a reference
    ("(call 07911 123456)", PHONE, "07911 123456"),
    ("tel:07911123456", PHONE, "07911123456"),
    ("in 2024 07911 123456 was my number", PHONE, "07911 123456"),  # a year glued on by a space
    # emails
    ("jo@example.com", EMAIL, "jo@example.com"),
    ("mail me: john.smith+homework@mail.example.co.uk!", EMAIL, "john.smith+homework@mail.example.co.uk"),
    ("Jo_99@school.sch.uk.", EMAIL, "Jo_99@school.sch.uk"),
    ("(lily-rose@my-mail.org)", EMAIL, "lily-rose@my-mail.org"),
    ("snap: john@gmail.com", EMAIL, "john@gmail.com"),  # an email, not also a handle
    # street addresses
    ("12 Acacia Avenue", ADDRESS, "12 Acacia Avenue"),
    ("Flat 3, 22 High Street", ADDRESS, "Flat 3, 22 High Street"),
    ("221b Baker St", ADDRESS, "221b Baker St"),
    ("come to 5 St Mary's Road", ADDRESS, "5 St Mary's Road"),
    ("it's 1600 Pennsylvania Avenue NW", ADDRESS, "1600 Pennsylvania Avenue"),
    ("I live at 12 acacia avenue", ADDRESS, "12 acacia avenue"),  # lower case, after address talk
    ("my address is 4 privet drive", ADDRESS, "4 privet drive"),
    ("12 rue de la Paix", ADDRESS, "12 rue de la Paix"),
    ("12, rue de Rivoli à Paris", ADDRESS, "12, rue de Rivoli"),
    ("3 boulevard Saint Michel", ADDRESS, "3 boulevard Saint Michel"),
    ("calle Mayor 5", ADDRESS, "calle Mayor 5"),
    ("Calle de Alcalá 42", ADDRESS, "Calle de Alcalá 42"),
    ("Hauptstraße 5", ADDRESS, "Hauptstraße 5"),
    ("Goethestr. 10", ADDRESS, "Goethestr. 10"),
    ("Berliner Straße 12", ADDRESS, "Berliner Straße 12"),
    ("Kalverstraat 12", ADDRESS, "Kalverstraat 12"),
    # postcodes: UK full postcodes on their own, US ZIP codes only after "City, ST"
    ("SW1A 1AA", ADDRESS, "SW1A 1AA"),
    ("postcode is m1 1ae", ADDRESS, "m1 1ae"),
    ("B33 8TH", ADDRESS, "B33 8TH"),
    ("EC1A1BB", ADDRESS, "EC1A1BB"),
    ("Springfield, IL 62704", ADDRESS, "Springfield, IL 62704"),
    ("Washington, DC 20500-0003", ADDRESS, "Washington, DC 20500-0003"),
    # handles
    ("my snap is xyz_123", HANDLE, "snap is xyz_123"),
    ("my snap is lily", HANDLE, "snap is lily"),
    ("add me on snapchat: xyz", HANDLE, "add me on snapchat: xyz"),
    ("add me on snapchat lily", HANDLE, "add me on snapchat lily"),
    ("insta: @name_x", HANDLE, "insta: @name_x"),
    ("ig @lily.rose", HANDLE, "ig @lily.rose"),
    ("discord lily#1234", HANDLE, "discord lily#1234"),
    ("discord: skaterboi", HANDLE, "discord: skaterboi"),
    ("kik me skaterboi", HANDLE, "kik me skaterboi"),
    ("telegram @coolkid", HANDLE, "telegram @coolkid"),
    ("TikTok @dancer.girl", HANDLE, "TikTok @dancer.girl"),
    ("my roblox is coolkid2012", HANDLE, "roblox is coolkid2012"),
    ("follow @lily_x", HANDLE, "@lily_x"),
    ("dm @lily_x for more", HANDLE, "@lily_x"),
    # an invitation to a private channel counts without a name
    ("whatsapp me", HANDLE, "whatsapp me"),
    ("Whats App me later", HANDLE, "Whats App me"),
    ("add me on snapchat", HANDLE, "add me on snapchat"),
]


@pytest.mark.parametrize(("text", "kind", "found"), TRUE_POSITIVES)
def test_true_positives(text: str, kind: PiiKind, found: str) -> None:
    assert spans(text) == [(kind, found)]


FALSE_POSITIVES = [
    # prices and amounts
    "£1,234.56",
    "$12,345.00",
    "1 299,99 €",
    "it costs 1 234 567 €",
    "EUR 1234567",
    "€ 0612345678",
    "+1000000 views",
    "population 12 345 678",
    # dates and times
    "2024-05-01",
    "01/05/2024",
    "12.03.2025",
    "2024/05/01",
    "01.05.2024 12:30:45",
    "12:30:45",
    "on 5/1/2024 at 10:15",
    # years and ranges
    "1990-2024",
    "1990 - 2024",
    "from 2019-2020-2021",
    # references and order numbers
    "Order #123456789",
    "order number 1234567890",
    "ref ABC-12345678",
    "Reference: 0791 112 3456",
    "Invoice No. 0791112345",
    "tracking number: 0123 4567 8901",
    "ticket 07911123456",
    "ID: 555-123-4567",
    "no. 123 456 7890",
    "# 0791 112 3456",
    # machine numbers
    "192.168.1.10",
    "10.0.0.138:8080",
    "192.168.100.200",
    "v1.2.3",
    "version 10.0.19041.1234",
    "978-3-16-148410-0",
    "ISBN 0-306-40615-2",
    "4111 1111 1111 1111",
    "my number is 4111 1111 1111 1111",  # a card, even in phone talk
    "12.5%",
    "99.99 %",
    "3.14159265",
    "0.123456789",
    # scores, counts, plain numbers
    "we won 3-2",
    "it's 4-4 at half time",
    "12345678",
    "5551234567",  # ten plain digits: a phone only in phone talk
    "abc12345678 and 12345678abc",
    "SKU AB12345678",
    "page 123 of 4567",
    # postcodes are not phones, and not every letter-digit pair is a postcode
    "90210-1234",
    "75008 Paris",
    "my PS5 2TB",
    "see u l8 5th period",
    "XSW1A 1AA",
    # not emails
    "@handle",
    "a@b",
    "user@localhost",
    "icon@2x.png and logo@3x.jpg",
    "see photo@home.jpeg",
    # not addresses
    "3 Street Fighter games",
    "I live on the 2nd floor",
    "top 10 ways to save money",
    "a 3 hour drive",
    "it took 2 long road trips",
    "the 3 quickest way",
    "12 acacia avenue",  # lower case without address talk
    "plaza mall 3",
    "5 route ideas",
    "die Straße 5",
    "I have 2 cats and a dog",
    # not handles
    "my snap is broken",
    "snapchat is down",
    "i love snapchat and tiktok",
    "my insta is private",
    "discord server rules",
    "ig its fine",
    "watch youtube videos",
    "tiktok is so funny",
    "my snap score is 5000",
    "meet @ 5pm",
    "meet @5pm",
    "@Override public void run()",
    "email me at the office",
    # ordinary sentences
    "Today at the club we played 3 rounds of Minecraft and I built a castle with 250 blocks.",
    "The homework for Year 7 is on page 42, questions 1-10, due 12/03/2025.",
    "Mum says tea is at 5:30pm and I need £2.50 for the trip.",
    "",
]


@pytest.mark.parametrize("text", FALSE_POSITIVES)
def test_false_positives(text: str) -> None:
    assert spans(text) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("07911 123456", "07*** ***456"),
        ("+44 7911 123456", "+44 **** ***456"),
        ("555-123-4567", "55*-***-*567"),
        ("jo.smith@example.com", "j***@e***.com"),
        ("lily@mail.school.co.uk", "l***@m***.uk"),
        ("12 Acacia Avenue", "** A***** Avenue"),
        ("Flat 3, 22 High Street", "Flat *, ** H*** Street"),
        ("12 rue de la Paix", "** rue de la P***"),
        ("Hauptstraße 5", "H****straße *"),
        ("SW1A 1AA", "SW** ***"),
        ("Springfield, IL 62704", "S**********, IL *****"),
        ("my snap is xyz_123", "snapchat: x***"),
        ("insta: @name_x", "instagram: @n***"),
        ("discord lily#1234", "discord: l***#****"),
        ("follow @lily_x", "@l***"),
        ("whatsapp me", "whatsapp: (no name given)"),
    ],
)
def test_what_staff_see(text: str, masked: str) -> None:
    (finding,) = find_personal_info(text)
    assert finding.masked == masked


VALUE = re.compile(r"[^\W_]+")


@pytest.mark.parametrize(("text", "kind", "found"), TRUE_POSITIVES)
def test_masking_never_reveals_the_value(text: str, kind: PiiKind, found: str) -> None:
    (finding,) = find_personal_info(text)
    assert finding.masked != found
    digits = "".join(c for c in found if c.isdigit())
    assert digits == "" or digits not in "".join(c for c in finding.masked if c.isdigit())
    if kind is EMAIL:
        local, _, domain = found.partition("@")
        assert local not in finding.masked or len(local) == 1
        assert domain not in finding.masked
    if kind is HANDLE:
        # the name itself (the longest word after the platform) never appears
        name = max(VALUE.findall(found[found.find(" ") + 1 :] or found), key=len, default="")
        if name not in ("me", "snapchat", "app"):
            assert name not in finding.masked


def test_findings_are_sorted_and_never_overlap() -> None:
    text = (
        "hi! I'm Lily, my number is 07911 123456 and my email lily_99@example.com. "
        "I live at 12 Acacia Avenue, London SW1A 1AA. add me on snapchat: lily_99 or whatsapp me"
    )
    assert spans(text) == [
        (PHONE, "07911 123456"),
        (EMAIL, "lily_99@example.com"),
        (ADDRESS, "12 Acacia Avenue"),
        (ADDRESS, "SW1A 1AA"),
        (HANDLE, "add me on snapchat: lily_99"),
        (HANDLE, "whatsapp me"),
    ]


def test_an_email_is_never_also_a_handle_or_a_phone() -> None:
    assert spans("follow me: @lily and mail lily@example.com") == [
        (HANDLE, "@lily"),
        (EMAIL, "lily@example.com"),
    ]
    assert spans("07911123456@example.com") == [(EMAIL, "07911123456@example.com")]


def test_a_phone_after_an_invitation_is_its_own_finding() -> None:
    assert spans("whatsapp me on 07911 123456") == [(HANDLE, "whatsapp me"), (PHONE, "07911 123456")]


def test_only_the_asked_kinds_are_looked_for() -> None:
    text = "call 07911 123456 or mail jo@example.com, snap: jo_1, 12 Acacia Avenue"
    assert [k for k, _ in spans(text, frozenset({EMAIL}))] == [EMAIL]
    assert [k for k, _ in spans(text, frozenset({PHONE, HANDLE}))] == [PHONE, HANDLE]
    assert spans(text, frozenset()) == []
    assert {k for k, _ in spans(text)} == set(PiiKind)


def test_offsets_index_the_original_text_even_when_lower_case_is_longer() -> None:
    # "İ" lower-cases to two characters; spans must still point into the text as given
    text = "İİİ my snap is lily_1 İ and 07911 123456"
    assert spans(text) == [(HANDLE, "snap is lily_1"), (PHONE, "07911 123456")]


def test_a_2kb_form_post_finds_only_the_personal_details() -> None:
    post = (
        "Hi everyone! Today at the club we played 3 rounds of Minecraft and I built a castle with 250 "
        "blocks. My friend Sam said his snapchat is broken again. The homework for Year 7 is on page 42, "
        "questions 1-10, due 12/03/2025. Mum says tea is at 5:30pm and I need £2.50 for the trip. We "
        "scored 3-2! Is anyone going to the Street Fighter tournament? It costs $15 and starts at 10am. "
    ) * 5
    post = post[:1900] + " my number is 07911 123456, I live at 12 Acacia Avenue, snap me @jo_99"
    found = find_personal_info(post)
    assert [f.kind for f in found] == [PHONE, ADDRESS, HANDLE]


@pytest.mark.parametrize(
    "text",
    [
        "1 " * 5000,
        "1-" * 5000,
        "+(" * 5000,
        "0" * 10000,
        "a@" * 5000,
        "a." * 5000 + "@",
        "@" + "a." * 5000,
        "snap is " * 2000,
        "snap : : : : " * 1000,
        "12 " + "Word " * 5000 + "Street",
        "calle " + "Mayor " * 5000,
        "straße " * 3000,
        "AB1 " * 5000,
    ],
)
def test_hostile_input_is_answered(text: str) -> None:
    # Patterns that backtrack would not come back from these (speed is measured in bench/, not here).
    found = find_personal_info(text)
    assert all(0 <= f.start < f.end <= len(text) for f in found)
    assert [f.start for f in found] == sorted(f.start for f in found)


@given(st.text(alphabet=st.sampled_from("0123456789 +-.()/@#:abcSTreet_\n"), max_size=200))
def test_any_text_gives_sorted_disjoint_findings_inside_it(text: str) -> None:
    found = find_personal_info(text)
    assert all(isinstance(f, PiiFinding) for f in found)
    assert all(0 <= f.start < f.end <= len(text) for f in found)
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))
    assert all(f.masked != text[f.start : f.end] for f in found)
