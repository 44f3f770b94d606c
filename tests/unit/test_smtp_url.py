import pytest

from keyhouse.outbox.smtp_url import SmtpTarget, parse_smtp_url


def test_plain_smtp_defaults_to_port_25_and_opportunistic_starttls() -> None:
    assert parse_smtp_url("smtp://mail.example.com") == SmtpTarget(
        host="mail.example.com", port=25, implicit_tls=False, starttls="auto"
    )


def test_smtps_defaults_to_port_465_and_implicit_tls() -> None:
    target = parse_smtp_url("smtps://mail.example.com")
    assert (target.port, target.implicit_tls, target.starttls) == (465, True, "no")


def test_user_password_and_options_are_read_and_url_decoded() -> None:
    target = parse_smtp_url(
        "smtp://keyhouse%40example.com:p%40ss%3Aword@mail.example.com:587"
        "?starttls=required&cafile=/etc/ca.pem&verify=no"
    )
    assert target.username == "keyhouse@example.com"
    assert target.password == "p@ss:word"
    assert (target.port, target.starttls, target.cafile, target.verify) == (
        587,
        "required",
        "/etc/ca.pem",
        False,
    )


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://mail.example.com", "must look like"),
        ("smtp://", "must look like"),
        ("smtp://mail.example.com?starttls=maybe", "starttls='maybe'"),
        ("smtps://mail.example.com?starttls=required", "TLS already"),
        ("smtp://mail.example.com?verify=perhaps", "verify='perhaps'"),
        ("smtp://mail.example.com?tls=1", "unknown option(s) tls"),
        ("smtp://mail.example.com:99999", "bad port"),
    ],
)
def test_bad_urls_say_what_to_write(url: str, words: str) -> None:
    with pytest.raises(ValueError, match="KEYHOUSE_SMTP_URL") as caught:
        parse_smtp_url(url)
    assert words in str(caught.value)
