"""Money as integer minor units, ISO 4217 currencies and exact decimal parsing."""

from __future__ import annotations

import functools
from decimal import Decimal, InvalidOperation

import attrs

from core.errors import FieldError, ValidationFailed

MAX_MINOR = 2**53 - 1

_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW "
    "KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR "
    "MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG "
    "SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD "
    "USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)

#: Active ISO 4217 codes and their minor-unit exponent (precious metals and
#: testing codes, which have no minor unit, are not currencies for payments).
MINOR_UNITS: dict[str, int] = {
    **{code: 0 for code in _ZERO.split()},
    **{code: 2 for code in _TWO.split()},
    **{code: 3 for code in _THREE.split()},
    **{code: 4 for code in _FOUR.split()},
}


def check_currency(code: object, field: str = "currency") -> str:
    """Return `code` if it is an active ISO 4217 code in upper case, else fail validation."""
    if not isinstance(code, str) or code not in MINOR_UNITS:
        raise ValidationFailed([FieldError(field, "must be an active ISO 4217 currency code in upper case")])
    return code


@attrs.frozen(order=False)
class Money:
    """An amount in integer minor units of one currency (never a float)."""

    minor: int
    currency: str

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} and {other.currency}")

    def format(self) -> str:
        """Render as a decimal string with exactly the currency's minor-unit digits."""
        return format_minor(self.minor, self.currency)


@functools.lru_cache(maxsize=1024)
def format_minor(minor: int, currency: str) -> str:
    """Render integer minor units as a decimal string: 10000 USD -> "100.00".

    Kept for the next call: a payment's view and events render its amount and refunded amount (mostly 0) five
    times, a batch's hundred payments five hundred."""
    exponent = MINOR_UNITS[currency]
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor))
    if exponent == 0:
        return sign + digits
    digits = digits.rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


def parse_amount(value: object, currency: str, *, field: str = "amount", allow_zero: bool = False) -> Money:
    """Parse a JSON number (already a Decimal or int) or a decimal string exactly.

    Rejects floats, booleans, exponents that hide extra precision, more decimal
    places than the currency allows, non-positive amounts (zero only when
    `allow_zero`) and anything above 2**53-1 minor units.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise ValidationFailed([FieldError(field, "must be a decimal number or a decimal string")])
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and (not text or not _DECIMAL_CHARS.issuperset(text)):
        raise ValidationFailed([FieldError(field, "must be a decimal number such as \"10.50\"")])
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValidationFailed([FieldError(field, "must be a decimal number such as \"10.50\"")]) from None
    if not number.is_finite():
        raise ValidationFailed([FieldError(field, "must be a finite decimal number")])
    if number.adjusted() > 20:
        raise ValidationFailed([FieldError(field, "is too large (at most 2^53-1 minor units)")])
    exponent = MINOR_UNITS[currency]
    places = -int(number.as_tuple().exponent)
    if places > exponent:  # "10.000" USD counts as three places too: the contract caps the digits sent
        raise ValidationFailed([FieldError(field, f"{currency} allows at most {exponent} decimal places")])
    minor = int(number.scaleb(exponent))  # exact: at most 21 integer digits + 4 places fit the 28-digit context
    if minor < 0 or (minor == 0 and not allow_zero):
        message = "must not be negative" if allow_zero else "must be greater than zero"
        raise ValidationFailed([FieldError(field, message)])
    if minor > MAX_MINOR:
        raise ValidationFailed([FieldError(field, "is too large (at most 2^53-1 minor units)")])
    return Money(minor, currency)


_DECIMAL_CHARS = frozenset("0123456789.-+")
