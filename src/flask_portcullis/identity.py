"""Normalise and validate usernames and email addresses.

Each identity has a display form (what the user typed, NFKC-normalised) and a
key that carries the unique index, so "Ada", "ADA" and the full-width forms of
the same letters are one account and sign in alike. An email's key is its
casefolded form. A username's key is its RFC 8265 PRECIS form
(UsernameCaseMapped:CaseFold), and its UTS #39 skeleton carries a second
unique index, so "scanner" spelt with a Cyrillic "a" (U+0430) cannot stand
beside "scanner".
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from functools import cache
from importlib import resources

import precis_i18n
from confusable_homoglyphs import categories
from email_validator import EmailNotValidError, validate_email

from .exceptions import FieldError

USERNAME_MIN = 3
USERNAME_MAX = 32
EMAIL_MAX = 254  # RFC 5321 path limit
USERNAME_KEY_MAX = 64  # the stored key (see models.UserMixin)
# The stored skeleton: prototypes can be longer than the letters they stand for ("m" is
# "rn"); room for the longest key's skeleton, and for the "#<id>" the 0007 migration
# appends to an old look-alike.
USERNAME_SKELETON_MAX = 255
# Letters, digits and ._- in any script; no "@" so a username never looks like an email.
_USERNAME = re.compile(r"^\w[\w.\-]*\Z")


def normalize_text(value: str) -> str:
    """NFKC and trim: the form every identity is stored and compared in."""
    return unicodedata.normalize("NFKC", value).strip()


def identity_key(value: str) -> str:
    """Return the case-insensitive key of an email address (and the old key of a username)."""
    return normalize_text(value).casefold()


# -- usernames: RFC 8265 and UTS #39 ---------------------------------------------------------

_PRECIS = precis_i18n.get_profile("UsernameCaseMapped:CaseFold")


def username_key(value: str) -> str:
    """Return the unique key of a username, or raise FieldError if RFC 8265 disallows it.

    NFKC first keeps full-width and mathematical letters one with their plain
    forms; the PRECIS UsernameCaseMapped profile (RFC 8265 3.3) then folds case,
    refuses what an identifier must not hold (joiners, symbols, mixed
    directions) and recomposes (NFC).
    """
    try:
        return _PRECIS.enforce(normalize_text(value))
    except UnicodeEncodeError as exc:
        raise FieldError("username", _precis_message(exc)) from None


def username_lookup_key(value: str) -> str:
    """The key to look a typed name up by: never raises, as sign-in must not tell anything.

    A name the profile refuses falls back to the old NFKC-casefold key,
    which matches no account made since.
    """
    try:
        return _PRECIS.enforce(normalize_text(value))
    except UnicodeEncodeError:
        return identity_key(value)


def _precis_message(exc: UnicodeEncodeError) -> str:
    if exc.reason.endswith("bidi_rule"):
        return "Do not mix right-to-left letters with left-to-right letters or digits."
    bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else ""
    shown = ", ".join(f"U+{ord(ch):04X}" for ch in bad[:3])
    return f"That username holds a character a username cannot have ({shown})."


def username_skeleton(key: str) -> str:
    """Return the UTS #39 skeleton of a username key: equal skeletons look alike.

    UTS #39 section 4: NFD, each character replaced by its confusable
    prototype, NFD again. "scanner" with a Cyrillic "a" (U+0430) and "scanner",
    "rnodern" and "modern", a Greek and a Latin "o" give one skeleton each.
    """
    table = _prototypes()
    mapped = "".join(table.get(ch, ch) for ch in unicodedata.normalize("NFD", key))
    return unicodedata.normalize("NFD", mapped)


# The JSON's generator kept the left-to-right marks that confusables.txt puts around
# right-to-left characters in its comments; they are no part of any character.
_BIDI_MARKS = str.maketrans("", "", "\u200e\u200f")


@cache
def _prototypes() -> dict[str, str]:
    """Map each confusable code point to its class's representative (built once, lazily).

    confusable_homoglyphs ships confusables.txt as a symmetric adjacency list
    (each "source -> prototype" line added both ways), so the classes are its
    connected components. A class's representative is its multi-character
    member (sources are single code points: such a member is the prototype),
    else its best-connected member, ties to the lowest code point.
    """
    source = resources.files("confusable_homoglyphs").joinpath("confusables.json")
    data: dict[str, list[dict[str, str]]] = json.loads(source.read_text(encoding="utf-8"))
    neighbours: defaultdict[str, set[str]] = defaultdict(set)
    for char, entries in data.items():
        a = char.translate(_BIDI_MARKS)
        for entry in entries:
            b = entry["c"].translate(_BIDI_MARKS)
            if a and b and a != b:
                neighbours[a].add(b)
                neighbours[b].add(a)
    table: dict[str, str] = {}
    seen: set[str] = set()
    for start in neighbours:
        if start in seen:
            continue
        component, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node not in component:
                component.add(node)
                stack.extend(neighbours[node] - component)
        seen |= component
        longer = [m for m in component if len(m) > 1]
        rep = min(longer) if longer else min(component, key=lambda m: (-len(neighbours[m]), ord(m)))
        table.update((m, rep) for m in component if len(m) == 1)
    # A multi-character representative's own letters go through the table too, so that
    # its skeleton equals that of any class member (to a fixed point: chains are short).
    for _ in range(4):
        changed = False
        for char, rep in table.items():
            if len(rep) > 1:
                mapped = "".join(table.get(ch, ch) for ch in rep)
                if mapped != rep:
                    table[char], changed = mapped, True
        if not changed:
            break
    return table


# UTS #39 5.2 "Highly Restrictive": one script, or Latin with the scripts written beside it
# in Japanese, Chinese (Bopomofo) or Korean. Common and Inherited characters (digits, ".",
# combining marks) belong to every script.
_SCRIPT_SETS = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_NEUTRAL = frozenset({"COMMON", "INHERITED"})


def username_scripts(value: str) -> list[str]:
    """The scripts a name is written in (Common and Inherited left out), in order of use."""
    found: list[str] = []
    for ch in value:
        script = categories.alias(ch)
        if script not in _NEUTRAL and script not in found:
            found.append(script)
    return found


def check_single_script(value: str) -> bool:
    """Tell whether ``value`` is Highly Restrictive in the sense of UTS #39 5.2."""
    scripts = set(username_scripts(value))
    return len(scripts) <= 1 or any(scripts <= allowed for allowed in _SCRIPT_SETS)


def has_control_characters(value: str) -> bool:
    """Tell whether ``value`` holds NUL or another control character (never in an identity).

    Such input must not reach the database: PostgreSQL refuses NUL in text.
    """
    return any(unicodedata.category(ch) == "Cc" for ch in value)


def clean_username(value: str) -> str:
    """Return the display form of a new username, or raise FieldError saying what is wrong."""
    username = normalize_text(value)
    if not USERNAME_MIN <= len(username) <= USERNAME_MAX:
        raise FieldError(
            "username", f"Use {USERNAME_MIN} to {USERNAME_MAX} letters, digits, '.', '_' or '-'."
        )
    if not _USERNAME.match(username):
        raise FieldError(
            "username",
            "Use only letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    key = username_key(username)
    if len(key) > USERNAME_KEY_MAX or len(username_skeleton(key)) > USERNAME_SKELETON_MAX:
        # Case folding can lengthen text ("ß" becomes "ss"); the key must fit.
        raise FieldError("username", "That username is too long.")
    if not check_single_script(username):
        scripts = [script.replace("_", " ").title() for script in username_scripts(username)]
        mixed = ", ".join(scripts[:-1]) + " and " + scripts[-1]
        raise FieldError("username", f"Use letters from one script: this name mixes {mixed}.")
    return username


def clean_email(value: str) -> str:
    """Return the normalised form of an email address, or raise FieldError.

    No DNS lookups: deliverability is proven by the verification mail instead.
    """
    text = normalize_text(value)
    if len(text) > EMAIL_MAX:
        raise FieldError("email", "That email address is too long.")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldError("email", f"Enter a valid email address ({exc}).") from exc
    if len(identity_key(result.normalized)) > EMAIL_MAX:
        raise FieldError("email", "That email address is too long.")
    return result.normalized


def mask_email(address: str) -> str:
    """Show enough of an address to recognise it, not enough to harvest it: a***@example.com."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"
