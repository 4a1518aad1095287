import logging

import pytest

from cdp.logs import RedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("member 13800138000 joined", "member <mobile> joined"),
        ("+86 138 0013 8000 and 0086-13800138000", "<mobile> and 0086-<mobile>"),
        ("Mail Foo.Bar@Example.COM now", "Mail <email> now"),
        ("order 202411230001234 total 12", "order 202411230001234 total 12"),  # 15 digits: not a mobile
        ("store 12345678901", "store 12345678901"),  # 11 digits but not 1[3-9]
        ("masked 138****1234", "masked 138****1234"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_filter_masks_arguments_of_a_record(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("cdp.test.redaction")
    log.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="cdp.test.redaction"):
        log.info("bad phone %s in %s", "13912345678", "crm_members")
    assert caplog.messages == ["bad phone <mobile> in crm_members"]
