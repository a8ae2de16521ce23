"""What the console's search forms accept, checked by WTForms
(https://wtforms.readthedocs.io, the validation library Flask-WTF is built on) before any
query runs.  The forms are GET forms (a search changes nothing): no CSRF token, and every
error message is a key of i18n.TEXTS, shown next to its field in the page's language.

Each form gives a plain frozen filter (orders.OrderFilter, reconciliation.DaysFilter ...)
that the query builders take: they never see request text that was not checked here.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Optional

from wtforms import Form, IntegerField, SelectField, StringField
from wtforms.fields import DateField, SelectChoice
from wtforms.validators import Length, NumberRange, Optional as Optional_, Regexp

# A business key as the HIS writes it (mi_outbox.business_key VARCHAR(64)): any printable text.
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")
PATIENT = re.compile(r"^[0-9A-Za-z]*$")


def _strip(v):
    return v.strip() if isinstance(v, str) else v


def choices(values) -> list[SelectChoice]:
    """"" (any) and the allowed values (the page writes their labels in its language)."""
    return [SelectChoice("", "")] + [SelectChoice(v, v) for v in values]


def key_field(label: str = "key") -> StringField:
    return StringField(label, filters=[_strip], validators=[
        Length(max=64, message="bad_key"), Regexp(_PRINTABLE, message="bad_key")])


def day_field(label: str) -> DateField:
    return DateField(label, format="%Y-%m-%d", invalid_value_message="bad_day", filters=[_strip],
                     validators=[Optional_()])


def select_field(label: str, values) -> SelectField:
    return SelectField(label, choices=choices(values), default="", invalid_choice_message="bad_choice",
                       validators=[Optional_()])


def size_field(sizes=(25, 50, 100, 200), default: int = 50) -> SelectField:
    return SelectField("size", choices=[SelectChoice(str(n), str(n)) for n in sizes], default=str(default),
                       invalid_choice_message="bad_choice", validators=[Optional_()])


def id_field(label: str) -> IntegerField:
    return IntegerField(label, invalid_value_message="bad_number",
                        validators=[Optional_(), NumberRange(min=1, max=2 ** 63 - 1, message="bad_number")])


class SearchForm(Form):
    """A GET form over request.args.  Unknown arguments are ignored."""

    max_days: Optional[int] = None      # the longest day range a form accepts, when it has one

    def check_range(self, first, last) -> bool:
        """The range's two ends in order and not too long (errors go on `last`)."""
        a, b = first.data, last.data
        if a is None or b is None:
            return True
        if a > b:
            last.errors.append("bad_range")
            return False
        if self.max_days is not None and (b - a).days + 1 > self.max_days:
            last.errors.append("range_too_long")
            return False
        return True

    def checks(self) -> bool:
        """The checks across fields, run after each field's own (a form overrides it)."""
        return True

    def validate(self, extra_validators=None) -> bool:
        own = super().validate(extra_validators)
        for field in self:
            # "x1" for a number fails twice (not a number, then not in range): say it once.
            field.errors = list(dict.fromkeys(field.errors))
        return self.checks() and own


def day_text(v: Optional[dt.date]) -> Optional[str]:
    return None if v is None else v.isoformat()


__all__ = ["SearchForm", "key_field", "day_field", "select_field", "size_field", "id_field", "day_text",
           "choices", "PATIENT"]
