"""Caller numbers: E.164 normalisation and masking for exports. Django-free."""

import phonenumbers


def to_e164(raw: str, default_region: str = "BR") -> str:
    """Return `raw` in E.164 (`+5511987654321`), or "" when it is no phone number (an extension)."""
    text = (raw or "").strip()
    if not text or len(text) < 8:  # extensions and short codes are not E.164 numbers
        return ""
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_possible_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(number: str, digits: int) -> str:
    """Replace the last `digits` digits of a number with 'x' (keeps '+', spaces and length)."""
    if digits <= 0 or not number:
        return number
    chars = list(number)
    left = digits
    for i in range(len(chars) - 1, -1, -1):
        if left == 0:
            break
        if chars[i].isdigit():
            chars[i] = "x"
            left -= 1
    return "".join(chars)
