"""Every word of the guest page, in each language it speaks (one dict per language, with
``str.format`` placeholders), and the choice of that language.

The page speaks the account user's language where the invite is known (``de`` or ``en``, the
languages of the mails), else the browser's (``Accept-Language``). The English texts are quoted
by tests and by docs/guest-page.md: change them together. The German ones match the mails'
tone ("Sie", „…“ quotes).
"""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"

WORDS: dict[str, dict[str, str]] = {
    "en": {
        # the key page
        "your_key": "Your key",
        "valid": "Valid",
        "right_now": "Right now",
        "open": "Open",
        "back": "Back to your key",
        "opened": "Done: {lock} is unlocked.",
        "now.valid": "Valid now",
        "now.not_valid": "Not valid now: {reason}",
        "now.not_valid.not_yet_valid": "Not valid now: {reason}",
        "now.not_valid.expired": "Not valid now: {reason}",
        "now.not_valid.weekday": "Not valid now: {reason}",
        "now.not_valid.time_of_day": "Not valid now: {reason}",
        "note.keypad_code": (
            "This key is a keypad code: type your code at the keypad by the door "
            "(it is in your e-mail; it is not shown here)."
        ),
        "note.not_an_app_key": "This key can't open the door from a browser.",
        "note.not_remote": (
            "This key can't open the door from this page: it is not allowed to open from afar, "
            "and Keyhouse has no app to use it at the door. Ask the person who invited you to "
            "allow remote use, or for a keypad code."
        ),
        "note.not_valid_now": "You can open the door from here while the key is valid: {validity}.",
        "note.not_on_lock": "The key is not on the lock yet; reload this page in a moment.",
        "someone": "the person who invited you",
        # dead links and refusals: <code>.title, <code>.message
        "unknown_link.title": "Unknown key link",
        "unknown_link.message": (
            "This key link is not known. Check that you opened the whole link from your e-mail."
        ),
        "taken.title": "Link already in use",
        "taken.message": (
            "This key link was already taken on another device; ask {who} to resend the invite."
        ),
        "key_deleted.title": "Key deleted",
        "key_deleted.message": "This key no longer exists.",
        "key_disabled.title": "Key switched off",
        "key_disabled.message": "This key was switched off by its owner.",
        "key_reassigned.title": "Key given to someone else",
        "key_reassigned.message": (
            "This key link no longer works: the key was given to someone else."
        ),
        "replaced.title": "Link replaced",
        "replaced.message": (
            "This key link was replaced by a newer invite: use the link in the newest e-mail."
        ),
        "expired.title": "Invite expired",
        "expired.message": "This invite expired; ask {who} for a new one.",
        # opening the door
        "keypad_code.title": "Use the keypad",
        "keypad_code.message": (
            "This key is a keypad code: type your code at the keypad by the door; it can't "
            "open the door from here."
        ),
        "not_an_app_key.title": "Not possible here",
        "not_an_app_key.message": "This key can't open the door from here.",
        "not_on_lock.title": "Not on the lock yet",
        "not_on_lock.message": (
            "The key is not on the lock yet: the lock has not confirmed it. Try again in a moment."
        ),
        "lock_offline.title": "Lock offline",
        "lock_offline.message": (
            "{lock} can't be reached right now (it is offline). Try again later."
        ),
        "lock_rejected.title": "The lock refused",
        "lock_rejected.message": "{lock} refused: {reason}.",
        "lock_busy.title": "Lock busy",
        "lock_busy.message": "{lock} is busy. Try again in a few seconds.",
        "refused.title": "Not opened",
        "refused.message": "{lock} did not open: {reason}. This key works: {validity}.",
        "refused_not_remote.title": "Not opened",
        "refused_not_remote.message": "{lock} did not open: {reason}. This key works: {validity}.",
        "lock_fault.title": "Not opened",
        "lock_fault.message": "{lock} could not open: {error}. Try again, or tell the owner.",
        # pages where no invite is known
        "rate_limited.title": "Too many requests",
        "rate_limited.message": (
            "Too many requests from your network; wait {seconds} s and try again."
        ),
        "internal_error.title": "Something went wrong",
        "internal_error.message": (
            "Keyhouse failed on this request. Try again in a moment; if it keeps failing, "
            "tell the person who invited you."
        ),
    },
    "de": {
        "your_key": "Ihr Schlüssel",
        "valid": "Gültig",
        "right_now": "Im Moment",
        "open": "Öffnen",
        "back": "Zurück zu Ihrem Schlüssel",
        "opened": "Erledigt: Das Schloss „{lock}“ ist aufgesperrt.",
        "now.valid": "Jetzt gültig",
        "now.not_valid": "Jetzt nicht gültig.",
        "now.not_valid.not_yet_valid": "Jetzt nicht gültig: Der Schlüssel gilt noch nicht.",
        "now.not_valid.expired": "Nicht mehr gültig: Der Schlüssel ist abgelaufen.",
        "now.not_valid.weekday": "Jetzt nicht gültig: Heute ist kein erlaubter Wochentag.",
        "now.not_valid.time_of_day": (
            "Jetzt nicht gültig: Es ist außerhalb der erlaubten Uhrzeit."
        ),
        "note.keypad_code": (
            "Dieser Schlüssel ist ein Tastaturcode: Tippen Sie Ihren Code am Keypad neben der "
            "Tür ein (er steht in Ihrer E-Mail; hier wird er nicht angezeigt)."
        ),
        "note.not_an_app_key": "Dieser Schlüssel kann die Tür nicht im Browser öffnen.",
        "note.not_remote": (
            "Dieser Schlüssel kann die Tür nicht von dieser Seite aus öffnen: Er darf nicht aus "
            "der Ferne öffnen, und Keyhouse hat keine App, um ihn an der Tür zu benutzen. Bitten "
            "Sie die Person, die Sie eingeladen hat, den Fernzugriff zu erlauben oder Ihnen "
            "einen Tastaturcode zu geben."
        ),
        "note.not_valid_now": (
            "Sie können die Tür von hier aus öffnen, solange der Schlüssel gilt: {validity}."
        ),
        "note.not_on_lock": (
            "Der Schlüssel ist noch nicht auf dem Schloss; laden Sie diese Seite gleich "
            "noch einmal."
        ),
        "someone": "die einladende Person",
        "unknown_link.title": "Unbekannter Schlüssel-Link",
        "unknown_link.message": (
            "Dieser Schlüssel-Link ist nicht bekannt. Prüfen Sie, ob Sie den ganzen Link aus "
            "Ihrer E-Mail geöffnet haben."
        ),
        "taken.title": "Link schon vergeben",
        "taken.message": (
            "Dieser Schlüssel-Link wurde schon auf einem anderen Gerät übernommen; bitten Sie "
            "{who}, die Einladung noch einmal zu senden."
        ),
        "key_deleted.title": "Schlüssel gelöscht",
        "key_deleted.message": "Diesen Schlüssel gibt es nicht mehr.",
        "key_disabled.title": "Schlüssel ausgeschaltet",
        "key_disabled.message": "Dieser Schlüssel wurde von seinem Besitzer ausgeschaltet.",
        "key_reassigned.title": "Schlüssel weitergegeben",
        "key_reassigned.message": (
            "Dieser Schlüssel-Link funktioniert nicht mehr: Der Schlüssel wurde jemand anderem "
            "gegeben."
        ),
        "replaced.title": "Link ersetzt",
        "replaced.message": (
            "Dieser Schlüssel-Link wurde durch eine neuere Einladung ersetzt: Verwenden Sie den "
            "Link aus der neuesten E-Mail."
        ),
        "expired.title": "Einladung abgelaufen",
        "expired.message": "Diese Einladung ist abgelaufen; bitten Sie {who} um eine neue.",
        "keypad_code.title": "Bitte das Keypad verwenden",
        "keypad_code.message": (
            "Dieser Schlüssel ist ein Tastaturcode: Tippen Sie Ihren Code am Keypad neben der "
            "Tür ein; von hier aus öffnet er die Tür nicht."
        ),
        "not_an_app_key.title": "Hier nicht möglich",
        "not_an_app_key.message": "Dieser Schlüssel kann die Tür nicht von hier aus öffnen.",
        "not_on_lock.title": "Noch nicht auf dem Schloss",
        "not_on_lock.message": (
            "Der Schlüssel ist noch nicht auf dem Schloss: Das Schloss hat ihn noch nicht "
            "bestätigt. Versuchen Sie es gleich noch einmal."
        ),
        "lock_offline.title": "Schloss nicht erreichbar",
        "lock_offline.message": (
            "Das Schloss „{lock}“ ist gerade nicht erreichbar (es ist offline). Versuchen Sie "
            "es später noch einmal."
        ),
        "lock_rejected.title": "Das Schloss hat abgelehnt",
        "lock_rejected.message": (
            "Das Schloss „{lock}“ hat den Auftrag abgelehnt. Versuchen Sie es später noch "
            "einmal, oder sagen Sie der Person Bescheid, die Sie eingeladen hat."
        ),
        "lock_busy.title": "Schloss beschäftigt",
        "lock_busy.message": (
            "Das Schloss „{lock}“ ist gerade beschäftigt. Versuchen Sie es in ein paar "
            "Sekunden noch einmal."
        ),
        "refused.title": "Nicht aufgesperrt",
        "refused.message": (
            "Das Schloss „{lock}“ wurde nicht aufgesperrt: Der Schlüssel gilt gerade nicht. "
            "Gültig: {validity}."
        ),
        "refused_not_remote.title": "Nicht aufgesperrt",
        "refused_not_remote.message": (
            "Das Schloss „{lock}“ wurde nicht aufgesperrt: Dieser Schlüssel funktioniert nur "
            "direkt an der Tür mit der App."
        ),
        "lock_fault.title": "Nicht aufgesperrt",
        "lock_fault.message": (
            "Das Schloss „{lock}“ konnte nicht aufsperren (es meldet einen Fehler). Versuchen Sie "
            "es noch einmal, oder sagen Sie der Person Bescheid, die Sie eingeladen hat."
        ),
        "rate_limited.title": "Zu viele Anfragen",
        "rate_limited.message": (
            "Zu viele Anfragen aus Ihrem Netz; warten Sie {seconds} s und versuchen Sie es "
            "dann noch einmal."
        ),
        "internal_error.title": "Etwas ist schiefgegangen",
        "internal_error.message": (
            "Keyhouse konnte diese Anfrage nicht bearbeiten. Versuchen Sie es gleich noch "
            "einmal; klappt es weiterhin nicht, sagen Sie der Person Bescheid, die Sie "
            "eingeladen hat."
        ),
    },
}


def page_language(language: str | None) -> str:
    """The language the page speaks for ``language``: itself if the page has it, else English."""
    return language if language in WORDS else DEFAULT_LANGUAGE


def words(language: str | None) -> dict[str, str]:
    """All words of the page in ``language`` (English for a language the page doesn't speak)."""
    return WORDS[page_language(language)]


def knows(key: str) -> bool:
    """Whether the catalogue has ``key`` (every language has the same keys)."""
    return key in WORDS[DEFAULT_LANGUAGE]


def say(language: str | None, key: str, **values: Any) -> str:
    """The text ``key`` in ``language``, its placeholders filled from ``values`` (a language
    may leave some of them out). An unknown key is a KeyError: a bug, not a fallback."""
    return words(language)[key].format(**values)


# --- the browser's language -------------------------------------------------------------------

_MAX_HEADER = 1000  # characters of Accept-Language looked at; browsers send far fewer


def _quality(params: list[str]) -> float | None:
    """The ``q`` of a language range's parameters (1 when absent), None when malformed."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return None
            return q if 0 <= q <= 1 else None
    return 1.0


def browser_language(accept_language: str | None) -> str:
    """``de`` if the browser prefers German over English (``Accept-Language``), else ``en``.

    Ranges are taken by their ``q`` (1 when absent), the earlier one first when equal; the first
    German or English one decides. ``q=0`` means "not wanted"; ``*`` and other languages say
    nothing about either; a malformed range is skipped. No header, or neither language: ``en``.
    """
    if not accept_language:
        return DEFAULT_LANGUAGE
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(accept_language[:_MAX_HEADER].split(",")):
        tag, *params = item.split(";")
        primary = tag.strip().split("-", 1)[0].lower()
        q = _quality(params)
        if primary in LANGUAGES and q is not None and q > 0:
            ranked.append((-q, index, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE
