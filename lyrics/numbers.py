"""Numbers written with digits, spelled out as they are sung ("42" -> "forty two")."""

from __future__ import annotations

import re

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
             "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_NUMBER = re.compile(r"(\d+(?:,\d{3})*)([a-zA-Z]{1,2})?")
_LARGEST_SPELLED = 10**15  # above this, digits are read one by one


def number_words(token: str) -> list[str]:
    """Spell a digit token as sung words: "42" -> ["forty", "two"], "1999" -> ["nineteen",
    "ninety", "nine"], "3rd" -> ["third"], "1,000" -> ["one", "thousand"].

    Four-digit numbers from 1100 to 2099 (except whole hundreds and 2000-2009) are read as
    years. Numbers with leading zeros or of 16 digits and more are read digit by digit.
    A token that is not a number gives [].
    """
    match = _NUMBER.fullmatch(token)
    if match is None:
        return []
    digits, suffix = match.group(1), match.group(2)
    plain = digits.replace(",", "")
    value = int(plain)
    if suffix and suffix.lower() == "s":  # a decade or the hundreds: "1990s", "80s", "1900s"
        return _plural(digits, value)
    if (plain.startswith("0") and len(plain) > 1) or value >= _LARGEST_SPELLED:
        words = [_ONES[int(digit)] for digit in plain]
    elif "," not in digits and _is_year(value):
        words = _year(value)
    else:
        words = _cardinal(value)
    if suffix and suffix.lower() in ("st", "nd", "rd", "th"):
        words[-1] = _ordinal(words[-1])
    return words


def _is_year(value: int) -> bool:
    return (1100 <= value <= 1999 and value % 100 != 0) or 2010 <= value <= 2099


def _year(value: int) -> list[str]:
    century, rest = divmod(value, 100)
    tail = ["oh", _ONES[rest]] if rest < 10 else _below_hundred(rest)
    return _below_hundred(century) + tail


def _below_hundred(value: int) -> list[str]:
    if value < 20:
        return [_ONES[value]]
    tens, ones = divmod(value, 10)
    return [_TENS[tens]] + ([_ONES[ones]] if ones else [])


def _below_thousand(value: int) -> list[str]:
    hundreds, rest = divmod(value, 100)
    words = [_ONES[hundreds], "hundred"] if hundreds else []
    return words + (_below_hundred(rest) if rest or not hundreds else [])


def _cardinal(value: int) -> list[str]:
    words: list[str] = []
    for scale, name in _SCALES:
        count, value = divmod(value, scale)
        if count:
            words += _below_thousand(count) + [name]
    if value or not words:
        words += _below_thousand(value)
    return words


def _ordinal(word: str) -> str:
    if word in _ORDINALS:
        return _ORDINALS[word]
    if word.endswith("y"):
        return word[:-1] + "ieth"
    return word + "th"


def _plural(digits: str, value: int) -> list[str]:
    """"1990s" -> nineteen nineties, "80s" -> eighties, "1900s" -> nineteen hundreds, "2000s" ->
    two thousands: the number as a year (or a cardinal), its last word made plural."""
    if "," not in digits and 1100 <= value <= 2099 and value % 100 == 0 and value % 1000 != 0:
        words = _below_hundred(value // 100) + ["hundred"]
    else:
        words = number_words(digits)
    last = words[-1]
    words[-1] = last[:-1] + "ies" if last.endswith("y") else last + "es" if last.endswith("x") else last + "s"
    return words


def clock_words(hours: int, minutes: int) -> list[str]:
    """A time of day as sung: "7:00" -> seven o'clock, "3:05" -> three oh five, "3:45" -> three
    forty five."""
    if minutes == 0:
        return _below_hundred(hours) + ["o'clock"]
    return _below_hundred(hours) + (["oh", _ONES[minutes]] if minutes < 10 else _below_hundred(minutes))
