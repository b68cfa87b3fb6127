"""core.money: exact decimal parsing, ISO 4217 minor units, rendering and currency codes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ValidationFailed
from core.money import MAX_MINOR, MINOR_UNITS, Money, check_currency, format_minor, parse_amount


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        (Decimal("10.50"), "USD", 1050),
        (Decimal("0.01"), "USD", 1),
        ("10.5", "USD", 1050),
        ("10", "USD", 1000),
        (10, "USD", 1000),
        (1, "JPY", 1),
        ("1500", "JPY", 1500),
        (Decimal("1500"), "JPY", 1500),
        ("1.234", "KWD", 1234),
        ("1", "KWD", 1000),
        (Decimal("0.001"), "KWD", 1),
        ("1.2345", "CLF", 12345),
        ("0.0001", "CLF", 1),
        ("  7.25 ", "USD", 725),
        ("+7.25", "USD", 725),
        (Decimal("1.00E+2"), "USD", 10000),  # an exponent that hides no precision is just a number
        (Decimal("100E-2"), "USD", 100),
        ("90071992547409.91", "USD", MAX_MINOR),
        (MAX_MINOR, "JPY", MAX_MINOR),
        (str(MAX_MINOR), "JPY", MAX_MINOR),
    ],
)
def test_parse_amount_is_exact(value: object, currency: str, minor: int) -> None:
    assert parse_amount(value, currency) == Money(minor, currency)


def test_minor_units_per_currency() -> None:
    assert (MINOR_UNITS["USD"], MINOR_UNITS["JPY"], MINOR_UNITS["KWD"], MINOR_UNITS["CLF"]) == (2, 0, 3, 4)
    assert (MINOR_UNITS["EUR"], MINOR_UNITS["BHD"], MINOR_UNITS["KRW"]) == (2, 3, 0)


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        (10.5, "USD"),  # a binary float never touches an amount
        (1.0, "JPY"),
        (True, "USD"),
        (False, "USD"),
        (None, "USD"),
        ([1], "USD"),
        ({"amount": 1}, "USD"),
        (b"10", "USD"),
        ("", "USD"),
        ("   ", "USD"),
        ("abc", "USD"),
        ("1e3", "USD"),
        ("1E+400", "USD"),
        ("NaN", "USD"),
        ("Infinity", "USD"),
        ("1_000", "USD"),
        ("1,5", "USD"),
        ("1.2.3", "USD"),
        ("--1", "USD"),
        (".", "USD"),
        ("0x10", "USD"),
        ("١٢", "USD"),  # Arabic-Indic digits: Decimal() would take them
        (Decimal("NaN"), "USD"),
        (Decimal("sNaN"), "USD"),
        (Decimal("Infinity"), "USD"),
        (Decimal("-Infinity"), "USD"),
        (Decimal("1E+400"), "USD"),
        (Decimal("1E+400"), "JPY"),
        (Decimal("1E+21"), "JPY"),
        (Decimal("1E-400"), "USD"),
        (Decimal("1.5E-2"), "USD"),
        (10**30, "USD"),
    ],
)
def test_parse_amount_rejects_non_decimals_and_exponent_tricks(value: object, currency: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_amount(value, currency)
    assert caught.value.errors[0].field == "amount"


@pytest.mark.parametrize(
    ("value", "currency"),
    [("10.001", "USD"), (Decimal("0.001"), "USD"), ("1.5", "JPY"), (Decimal("0.1"), "JPY"),
     ("1.0001", "KWD"), ("0.00001", "CLF")],
)
def test_parse_amount_rejects_more_decimals_than_the_currency_has(value: object, currency: str) -> None:
    with pytest.raises(ValidationFailed, match=f"at most {MINOR_UNITS[currency]} decimal places"):
        parse_amount(value, currency)



@pytest.mark.parametrize("value", ["1.000000000000000000000000000001", Decimal("1.0000000000000000000000000000001")])
def test_parse_amount_never_rounds_away_a_long_fractional_tail(value: object) -> None:
    with pytest.raises(ValidationFailed):
        parse_amount(value, "USD")


@pytest.mark.parametrize("value", [0, "0", "0.00", Decimal("0"), Decimal("-0"), -1, "-0.01", Decimal("-5")])
def test_parse_amount_rejects_zero_and_negative_movements(value: object) -> None:
    with pytest.raises(ValidationFailed, match="greater than zero"):
        parse_amount(value, "USD")


def test_parse_amount_allows_zero_only_when_asked() -> None:
    assert parse_amount("0", "USD", allow_zero=True) == Money(0, "USD")
    assert parse_amount(Decimal("0.00"), "USD", allow_zero=True) == Money(0, "USD")
    with pytest.raises(ValidationFailed, match="must not be negative"):
        parse_amount("-0.01", "USD", allow_zero=True)


@pytest.mark.parametrize(
    ("value", "currency"),
    [("90071992547409.92", "USD"), (MAX_MINOR + 1, "JPY"), (str(MAX_MINOR + 1), "JPY"),
     (Decimal("9007199254740.992"), "KWD"), ("1000000000000000", "USD")],
)
def test_parse_amount_rejects_more_than_2_53_minus_1_minor_units(value: object, currency: str) -> None:
    with pytest.raises(ValidationFailed, match="too large"):
        parse_amount(value, currency)


def test_parse_amount_names_the_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_amount("x", "USD", field="initial_balance")
    assert [e.field for e in caught.value.errors] == ["initial_balance"]


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (10000, "USD", "100.00"),
        (5, "USD", "0.05"),
        (50, "USD", "0.50"),
        (0, "USD", "0.00"),
        (-5, "USD", "-0.05"),
        (-10000, "USD", "-100.00"),
        (-123456, "USD", "-1234.56"),
        (100, "JPY", "100"),
        (0, "JPY", "0"),
        (-7, "JPY", "-7"),
        (1000, "KWD", "1.000"),
        (1, "KWD", "0.001"),
        (-1, "KWD", "-0.001"),
        (1, "CLF", "0.0001"),
        (MAX_MINOR, "USD", "90071992547409.91"),
    ],
)
def test_format_minor(minor: int, currency: str, text: str) -> None:
    assert format_minor(minor, currency) == text
    assert Money(minor, currency).format() == text


@given(
    minor=st.integers(min_value=1, max_value=MAX_MINOR),
    currency=st.sampled_from(["USD", "JPY", "KWD", "CLF"]),
)
def test_format_then_parse_round_trips(minor: int, currency: str) -> None:
    text = format_minor(minor, currency)
    assert parse_amount(text, currency) == Money(minor, currency)
    assert parse_amount(Decimal(text), currency) == Money(minor, currency)


def test_money_arithmetic_keeps_one_currency() -> None:
    assert Money(150, "USD") + Money(50, "USD") == Money(200, "USD")
    assert Money(150, "USD") - Money(200, "USD") == Money(-50, "USD")
    assert -Money(5, "USD") == Money(-5, "USD")
    with pytest.raises(ValueError, match="cannot combine"):
        Money(1, "USD") + Money(1, "EUR")


@pytest.mark.parametrize("code", ["USD", "EUR", "JPY", "KWD", "CLF", "GBP", "CHF", "VES", "SLE", "ZWG"])
def test_check_currency_accepts_active_codes(code: str) -> None:
    assert check_currency(code) == code


@pytest.mark.parametrize(
    "code",
    ["usd", "Usd", "eur", " USD", "USD ", "US", "USDD", "", None, 840, b"USD",
     # not currencies for payments: precious metals, testing and "no currency" codes
     "XAU", "XAG", "XTS", "XXX", "XDR",
     # withdrawn or replaced codes
     "HRK", "VEF", "SLL", "ZWL", "CUC", "MRO", "STD", "LTL", "EEK", "DEM", "BYR"],
)
def test_check_currency_rejects_lower_case_unknown_and_inactive_codes(code: object) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_currency(code, field="source.currency")
    assert caught.value.errors[0].field == "source.currency"
