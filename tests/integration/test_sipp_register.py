"""SIPp phones registering with a real ``tollguard serve`` (the session's switch)."""

from __future__ import annotations

from tollguard.bench.sippctl import LOOPBACK

from .harness import PHONE, Switch

WRONG_HOST = "127.0.0.5"  # tries a wrong password once
UNKNOWN_HOST = "127.0.0.6"  # tries a user that does not exist
GUESSER_HOST = "127.0.0.7"  # guesses until banned, then has the right password


def test_a_phone_registers_refreshes_and_its_binding_expires(switch: Switch) -> None:
    # Bound for 2 s, refreshed, then 3.5 s later a query finds no binding left.
    _, result = switch.call(
        "uac_register", PHONE[0], host=LOOPBACK, auth=PHONE,
        keys={"expires": "2"}, pause_ms=3500, timeout_s=30,
    )  # fmt: skip
    assert result.ok, result.errors
    assert result.successful == 1
    log = switch.server.log()
    assert log.count(f"registered {PHONE[0]} at sip:{PHONE[0]}@{LOOPBACK}:") == 2
    assert any(
        "binding expired: account" in line and f"at sip:{PHONE[0]}@" in line
        for line in log.splitlines()
    ), log[-2000:]


def _refused(switch: Switch, host: str, auth: tuple[str, str]) -> int:
    _, result = switch.call(
        "uac_register_expect_code", auth[0], host=host, auth=auth,
        keys={"expires": "60", "expected": "403"},
    )  # fmt: skip
    assert result.ok, result.errors  # the scenario checked the code: 403
    (code,) = result.final_codes.values()
    return code


def test_wrong_password_unknown_user_and_banned_source_are_answered_alike(
    switch: Switch,
) -> None:
    wrong = _refused(switch, WRONG_HOST, (PHONE[0], "not-the-password"))
    unknown = _refused(switch, UNKNOWN_HOST, ("nobody", "guess"))
    # Five failures ban the guesser's address (shield.auth_failures); from then on
    # even the right password is refused, exactly as a wrong one.
    for attempt in range(5):
        _refused(switch, GUESSER_HOST, (f"nobody{attempt}", "guess"))
    banned = _refused(switch, GUESSER_HOST, PHONE)
    assert wrong == unknown == banned == 403
    # Each was refused for its own reason, which only the security log tells.
    log = switch.server.log()
    for host, user, reason in (
        (WRONG_HOST, PHONE[0], "bad-credentials"),
        (UNKNOWN_HOST, "nobody", "unknown-user"),
        (GUESSER_HOST, PHONE[0], "shield"),
    ):
        assert any(
            f"ip={host} " in line and f'user="{user}" reason={reason}' in line
            for line in log.splitlines()
        ), (host, reason)
    assert f"sip ban: ip={GUESSER_HOST} " in log
