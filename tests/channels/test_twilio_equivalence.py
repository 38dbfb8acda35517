"""The WhatsApp webhook's own signature check, form parser and TwiML writer give what Twilio's
``RequestValidator``, ``urllib.parse.parse_qsl`` and ``MessagingResponse`` give, on arbitrary
input (they replaced them for speed, not to behave differently)."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote_plus, urlparse

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator, add_port, remove_port
from twilio.twiml.messaging_response import MessagingResponse

from chatforge.channels.twilio_whatsapp import (
    MAX_FORM_FIELDS,
    FormParams,
    TwilioWhatsApp,
    parse_form,
)
from chatforge.errors import Invalid
from chatforge.settings import load_settings
from tests.servers import SECRET

TOKEN = "twilio-auth-token-for-tests"
# Characters that matter to forms and XML, some non-ASCII, a control character.
TEXT = st.text(alphabet=st.sampled_from("ab Z09&=+%;<>\"'é·😀\x01\n"), max_size=12)
FORMS = st.lists(st.tuples(TEXT, TEXT), max_size=6)


def channel(public_url: str) -> TwilioWhatsApp:
    config = load_settings(secret_key=SECRET, public_url=public_url, twilio_auth_token=TOKEN)
    return TwilioWhatsApp(config, httpx.AsyncClient())


def params_of(pairs: list[tuple[str, str]]) -> FormParams:
    params = FormParams()
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


@pytest.mark.parametrize(
    "public_url", ["https://chat.example.org", "http://127.0.0.1:8000", "https://x.org:8443"]
)
@given(pairs=FORMS, use_port=st.booleans(), algorithm=st.sampled_from([None, "HMAC_SHA256"]))
@settings(max_examples=60, deadline=None)
def test_a_signature_is_accepted_exactly_when_twilios_validator_accepts_it(
    public_url: str, pairs: list[tuple[str, str]], use_port: bool, algorithm: str | None
) -> None:
    whatsapp = channel(public_url)
    params = params_of(pairs)
    validator = RequestValidator(TOKEN)
    # Twilio may sign the URL with or without the default port.
    signed_url = (add_port if use_port else remove_port)(urlparse(whatsapp.url))
    good = validator.compute_signature(signed_url, params, algorithm)
    header = f"key=k1,algorithm={algorithm}" if algorithm else None
    for signature in (good, good[:-2] + "AA", validator.compute_signature("https://x", params)):
        expected = validator.validate(whatsapp.url, params, signature, algorithm)
        assert whatsapp.verify(params, signature, header) is bool(expected)


def test_an_unknown_signature_algorithm_is_refused() -> None:
    whatsapp = channel("https://chat.example.org")
    params = params_of([("Body", "hi")])
    signature = RequestValidator(TOKEN).compute_signature(whatsapp.url, params)
    assert whatsapp.verify(params, signature, "algorithm=HMAC_MD5") is False
    assert whatsapp.verify(params, signature, None) is True


@given(pairs=FORMS, blanks=st.integers(0, 2))
@settings(max_examples=200, deadline=None)
def test_a_form_parses_as_parse_qsl_reads_it(pairs: list[tuple[str, str]], blanks: int) -> None:
    fields = [f"{quote_plus(name)}={quote_plus(value)}" for name, value in pairs]
    # Raw, unencoded pieces too: '+' for spaces, a field with no '=', empty fields.
    fields += ["a+b=c+d", "flag"][: blanks + 1] + [""] * blanks
    body = "&".join(fields)
    expected = params_of(parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))
    assert parse_form(body.encode()) == expected


def test_a_body_that_is_not_a_form_is_refused_like_parse_qsl_refuses_it() -> None:
    with pytest.raises(Invalid):
        parse_form(b"a=\xff")
    too_many = "&".join(f"f{i}=1" for i in range(MAX_FORM_FIELDS + 1))
    with pytest.raises(ValueError):
        parse_qsl(too_many, max_num_fields=MAX_FORM_FIELDS)
    with pytest.raises(Invalid):
        parse_form(too_many.encode())
    at_limit = "&".join(f"f{i}=1" for i in range(MAX_FORM_FIELDS))
    assert len(parse_form(at_limit.encode())) == MAX_FORM_FIELDS
    assert parse_form(b"") == {}


@given(replies=st.lists(st.text(max_size=30), max_size=4))
@settings(max_examples=200, deadline=None)
def test_twiml_is_what_messaging_response_writes(replies: list[str]) -> None:
    response = MessagingResponse()
    for text in replies:
        response.message(text)
    assert TwilioWhatsApp.twiml(replies) == str(response)
