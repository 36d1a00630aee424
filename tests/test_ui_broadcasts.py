# ruff: noqa: F811 -- `sluice`, `driver` and `browser` are test_ui_pages's fixtures
"""The broadcast pages in-process, on SQLite and PostgreSQL: the list and its empty
state, composing a draft (refused with every problem and the form as typed, saving
nothing), sending once the audience's size is confirmed, the progress and results
after the worker ran, the preview for a member, a test send into the outbox, and
cancelling a scheduled one. The same by keyboard in a real browser is in
test_ui_browser.py."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from fastapi.testclient import TestClient

from conftest import Driver
from delivery_servers import SmtpServer
from sluice.api.app import create_app
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.broadcasts import NewBroadcast
from sluice.store.imports import Change
from test_ui_pages import (
    PASSWORD,
    anonymous,  # noqa: F401 (the fixtures, shared; `browser` is `anonymous` logged in)
    browser,  # noqa: F401
    csrf,
    driver,  # noqa: F401
    login,
    sluice,  # noqa: F401
)

CUSTOMERS = "kind: segment\nkey: customers\nname: Customers\nrules: [{tag: customer}]\n"
NEWS = {
    "name": "Spring news",
    "segment": "customers",
    "content": "inline",
    "subject": "News for {{ visitor.first_name }}",
    "html": "<p>Hello {{ visitor.first_name }}</p>",
}


def text_of(html: str) -> str:
    """The page's text as read: tags out, entities decoded, spaces folded."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def figure(page: str, name: str) -> str:
    """The number shown as `name` (`data-stat`) on a broadcast's page."""
    return re.search(rf'data-stat="{name}">([^<]*)<', page).group(1)


def customers(sluice, driver, *names: str) -> None:
    sluice.apply_text(CUSTOMERS, "customers.yaml")
    for name in names:
        driver.send(
            "$tag",
            f"{name.lower()}@example.com",
            details={"tag": "customer"},
            fields={"first_name": name},
        )


def compose(client, fields: dict):
    token = csrf(client, "/broadcasts/_new")
    return client.post("/broadcasts/_new", data={"csrf": token, **fields})


def problems(page: str) -> list[str]:
    """The problems listed on the page, as `loc: msg`."""
    found = re.findall(r"<li><code>(.*?)</code>: (.*?)</li>", page, re.S)
    return [unescape(f"{loc}: {msg}") for loc, msg in found]


def confirmation(page: str) -> tuple[str, str]:
    """The question a send asks, and the value of its confirming button."""
    question = text_of(re.search(r"<section[^>]*data-confirm-send.*?</section>", page, re.S)[0])
    return question, re.search(r'name="confirm" value="([^"]+)"', page).group(1)


def test_with_no_broadcast_the_list_says_how_to_make_one(browser):
    page = browser.get("/broadcasts")
    assert page.status_code == 200
    assert '<a href="/broadcasts" class="active" aria-current="page">Broadcasts</a>' in page.text
    nav = re.search(r'<nav class="nav".*?</nav>', page.text, re.S)[0]
    assert text_of(nav).split()[-3:] == ["Broadcasts", "Outbox", "Visitors"]  # after Segments
    assert "No broadcasts yet" in page.text
    assert '<a class="button primary" href="/broadcasts/_new">New broadcast</a>' in page.text


def test_a_draft_with_an_inline_email_to_a_segment(browser, driver, sluice):
    customers(sluice, driver, "Ada", "Bob")
    form = browser.get("/broadcasts/_new").text
    assert '<option value="customers" >Customers (2 members)</option>' in form
    assert "Everyone (2 visitors)" in form

    saved = compose(browser, NEWS | {"name": "<b>Spring</b> news", "action": "draft"})
    assert saved.status_code == 303
    [draft] = sluice.broadcasts()
    assert saved.headers["location"] == f"/broadcasts/{draft['id']}"
    assert draft["status"] == "draft" and draft["segment"] == "customers"
    assert draft["email"] == {"subject": NEWS["subject"], "html": NEWS["html"]}

    page = browser.get(saved.headers["location"]).text
    assert "Saved the draft <b>Spring</b> news." in unescape(page)  # the notice, as text
    assert "<b>Spring</b>" not in page  # escaped everywhere
    assert '<span class="badge badge-draft" data-broadcast-status>draft</span>' in page
    assert "To Customers · not scheduled" in text_of(page)
    assert "News for {{ visitor.first_name }}" in unescape(page)  # its subject as written
    assert "Send or schedule" in page  # a draft can be sent from its page

    listed = browser.get("/broadcasts").text
    row = text_of(re.search(r"<tr data-broadcast=.*?</tr>", listed, re.S)[0])
    assert row == "<b>Spring</b> news Customers draft not scheduled — —"


def test_bad_content_shows_every_problem_with_the_form_as_typed_and_saves_nothing(
    browser, driver, sluice
):
    customers(sluice, driver, "Ada")
    typed = NEWS | {"name": "", "subject": "News {{ oops", "per_hour": "lots", "action": "send"}
    answer = compose(browser, typed | {"segment": "gone", "inclusive_tags": "vip, beta"})
    assert answer.status_code == 422
    assert problems(answer.text) == [
        "name: give the broadcast a name",
        "per_hour: Input should be a valid integer, unable to parse string as an integer",
        "email.subject: Liquid syntax error at 1:6: expected '}}', found end of file",
        "segment: no segment with key 'gone'",
    ]
    assert "Nothing was saved: 4 problems." in text_of(answer.text)
    # Each field says its own problem and is marked for assistive technology.
    subject = re.search(r'<input id="broadcast-subject"[^>]*>', answer.text)[0]
    assert 'aria-invalid="true"' in subject and "problem-subject" in subject
    assert 'value="News {{ oops"' in unescape(subject)  # as typed
    assert 'value="vip, beta"' in answer.text
    assert sluice.broadcasts() == []

    no_template = compose(browser, NEWS | {"content": "template", "action": "draft"})
    assert no_template.status_code == 422
    assert problems(no_template.text) == ["email.template: choose a template"]
    assert sluice.broadcasts() == []


def test_sending_asks_first_then_the_page_shows_progress_and_results(browser, driver, sluice):
    customers(sluice, driver, "Ada", "Bob", "Cy")
    sluice.audience.run_commands([(0, Change(command="unsubscribe", email="cy@example.com"))])

    asked = compose(browser, NEWS | {"action": "send"})
    assert asked.status_code == 200
    question, token = confirmation(asked.text)
    assert question.startswith("Send Spring news now to Customers?")
    assert "The segment Customers has 3 members now, 2 of them subscribed" in question
    assert "Send to 2 subscribed visitors" in question
    assert "autofocus" in re.search(r"<section[^>]*data-confirm-send[^>]*>", asked.text)[0]
    assert 'value="Spring news"' in asked.text  # the form stays as typed
    assert sluice.broadcasts() == []  # nothing sent, nothing saved

    sent = compose(browser, NEWS | {"confirm": token})
    assert sent.status_code == 303
    page = browser.get(sent.headers["location"]).text
    assert "Sending Spring news now" in page
    [broadcast] = sluice.broadcasts()
    url = f"/ui/broadcasts/{broadcast['id']}/progress"
    assert f'data-progress-url="{url}"' in page  # its script follows it
    assert browser.get(url).json()["moving"] is True

    driver.run()
    page = browser.get(sent.headers["location"]).text
    assert "Sent: 2 queued, 2 sent." in text_of(page)
    assert [figure(page, n) for n in ("audience", "queued", "sent", "skipped_unsubscribed")] == [
        "3",
        "2",
        "2",
        "1",
    ]
    assert "2 are kept in the outbox" in text_of(page)  # no SMTP server here
    assert "data-progress-url" not in page  # nothing moves any more
    assert "Cancel broadcast" not in page  # nothing is left to stop
    progress = browser.get(url).json()
    assert (progress["status"], progress["moving"], progress["figures"]["sent"]) == (
        "sent",
        False,
        2,
    )

    ada = sluice.messages(email="ada@example.com")[0]
    assert ada["payload"]["subject"] == "News for Ada"
    sluice.record_engagement(ada["idempotency_id"], "email_opened", {})
    sluice.record_engagement(ada["idempotency_id"], "email_clicked", {"url": "https://x.test"})
    page = browser.get(sent.headers["location"]).text
    assert [figure(page, n) for n in ("opened", "clicked", "unsubscribed")] == ["1", "1", "0"]
    listed = browser.get("/broadcasts").text
    row = text_of(re.search(r"<tr data-broadcast=.*?</tr>", listed, re.S)[0])
    assert row.startswith("Spring news Customers sent 2026-01-05 08:00 UTC")
    assert row.endswith("2 queued · 2 sent · 1 skipped 1 opened · 1 clicked")


def test_the_preview_renders_for_a_member_as_delivery_would(browser, driver, sluice):
    customers(sluice, driver, "Ada", "Bob")
    driver.send("signed_up", "outsider@example.com", fields={"first_name": "Out"})
    found = sluice.create_broadcast(
        NewBroadcast(
            name="News",
            email={"subject": NEWS["subject"], "html": NEWS["html"]},
            segment_key="customers",
        )
    )
    page = browser.get(f"/broadcasts/{found['id']}").text
    assert "Rendered for ada@example.com, the first member of its audience." in text_of(page)
    assert re.search(r"data-preview-subject>([^<]*)<", page).group(1) == "News for Ada"
    frame = re.search(r"<iframe[^>]*>", page)[0]
    assert 'sandbox=""' in frame and "Hello Ada" in unescape(frame)

    bob = browser.get(f"/broadcasts/{found['id']}?preview=bob@example.com").text
    assert re.search(r"data-preview-subject>([^<]*)<", bob).group(1) == "News for Bob"
    assert 'name="visitor" value="bob@example.com"' in bob  # the test send renders for Bob too

    nobody = browser.get(f"/broadcasts/{found['id']}?preview=nobody@example.com").text
    assert "No visitor has the email nobody@example.com." in text_of(nobody)
    assert "data-preview-subject" not in nobody


def test_a_test_send_lands_in_the_outbox_marked_as_a_test(browser, driver, sluice):
    customers(sluice, driver, "Ada", "Bob")
    found = sluice.create_broadcast(
        NewBroadcast(
            name="News",
            email={"subject": NEWS["subject"], "html": NEWS["html"]},
            segment_key="customers",
        )
    )
    page = f"/broadcasts/{found['id']}"
    bad = browser.post(
        f"{page}/test", data={"csrf": csrf(browser), "to": "not an address", "visitor": ""}
    )
    assert bad.status_code == 422
    assert "not an email address: 'not an address'" in unescape(bad.text)
    assert 'aria-invalid="true"' in re.search(r'<input id="test-to"[^>]*>', bad.text)[0]

    sent = browser.post(
        f"{page}/test",
        data={"csrf": csrf(browser), "to": "me@example.com", "visitor": "bob@example.com"},
    )
    assert sent.status_code == 303
    assert sent.headers["location"] == f"{page}?preview=bob@example.com"
    notice = text_of(browser.get(sent.headers["location"]).text)
    assert "Sent a test to me@example.com: no SMTP server is configured" in notice

    outbox = browser.get("/outbox?email=me@example.com").text
    row = re.search(r"<tr[^>]*data-test-email=.*?</tr>", outbox, re.S)[0]
    assert "[Test] News for Bob" in unescape(row)
    assert '<span class="badge badge-test">test</span>' in row
    assert sluice.broadcast(found["id"])["stats"]["queued"] == 0  # the broadcast is untouched
    assert sluice.broadcast(found["id"])["status"] == "draft"


def test_with_smtp_a_test_send_goes_at_once_and_a_refusal_is_said(database_url, clock):
    with SmtpServer(clock) as smtp:
        settings = Settings(
            database_url=database_url,
            signing_key="k",
            admin_password=PASSWORD,
            smtp_url=smtp.url,
        )
        app = Sluice(settings, clock)
        try:
            customers(app, Driver(app, clock), "Ada")
            found = app.create_broadcast(
                NewBroadcast(name="News", email={"subject": NEWS["subject"], "html": "<p>Hi</p>"})
            )
            with TestClient(create_app(app), follow_redirects=False) as client:
                login(client)
                fields = {"csrf": csrf(client), "to": "me@example.com", "visitor": ""}
                sent = client.post(f"/broadcasts/{found['id']}/test", data=fields)
                notice = text_of(client.get(sent.headers["location"]).text)
                smtp.answers.append("550 no such mailbox")
                refused = client.post(f"/broadcasts/{found['id']}/test", data=fields)
        finally:
            app.close()
    assert "Sent a test to me@example.com through the SMTP server." in notice
    [received] = smtp.received
    assert received.recipients == ["me@example.com"]
    assert received.message["Subject"] == "[Test] News for Ada"  # the first member's
    assert refused.status_code == 502
    said = re.search(r'<p class="field-problem" id="problem-to">([^<]*)</p>', refused.text)
    assert unescape(said.group(1)).startswith("the test was not sent: ")
    assert "550 no such mailbox" in unescape(said.group(1))


def test_a_draft_is_scheduled_from_its_page_and_a_scheduled_one_cancelled(
    browser, driver, sluice, clock
):
    customers(sluice, driver, "Ada")
    found = sluice.create_broadcast(
        NewBroadcast(name="Later", email={"subject": "Hi", "html": "<p>Hi</p>"})
    )
    page = f"/broadcasts/{found['id']}"
    tomorrow = (clock.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    fields = {"csrf": csrf(browser), "when": "at", "send_at": tomorrow}
    past = browser.post(f"{page}/send", data=fields | {"send_at": "2020-01-01T09:00"})
    assert past.status_code == 422
    assert problems(past.text) == ["send_at: is in the past (to send now, choose now)"]

    asked = browser.post(f"{page}/send", data=fields)
    question, token = confirmation(asked.text)
    assert question.startswith("Schedule Later for 2026-01-06 08:00 UTC to everyone?")
    assert "Sluice has 1 visitor now, 1 of them subscribed" in question
    assert sluice.broadcast(found["id"])["status"] == "draft"
    scheduled = browser.post(f"{page}/send", data=fields | {"confirm": token})
    assert scheduled.status_code == 303
    shown = browser.get(page).text
    assert "Scheduled Later for 2026-01-06 08:00 UTC." in text_of(shown)
    assert "Scheduled for 2026-01-06 08:00 UTC: nothing is queued yet." in text_of(shown)
    cancel = re.search(r'<form[^>]*action="[^"]*/cancel"[^>]*>', shown)[0]
    assert 'data-confirm="Cancel Later? Nothing more of it is queued' in cancel

    cancelled = browser.post(f"{page}/cancel", data={"csrf": csrf(browser)})
    assert cancelled.status_code == 303
    shown = browser.get(page).text
    assert "Cancelled Later." in text_of(shown)
    assert '<span class="badge badge-cancelled" data-broadcast-status>cancelled</span>' in shown
    assert "Cancel broadcast" not in shown
    driver.advance(timedelta(days=2))
    assert sluice.broadcast(found["id"])["stats"]["queued"] == 0  # it never went

    again = browser.post(f"{page}/cancel", data={"csrf": csrf(browser)})
    assert again.status_code == 409
    assert "Nothing changed: broadcast 1 is cancelled already." in text_of(again.text)


def test_a_broadcast_at_a_local_time_says_so(browser, driver, sluice, clock):
    customers(sluice, driver, "Ada")
    day = (clock.now() + timedelta(days=3)).date().isoformat()
    fields = NEWS | {"when": "local", "local_date": day, "local_time": "09:00", "per_hour": "100"}
    _, token = confirmation(compose(browser, fields | {"action": "send"}).text)
    sent = compose(browser, fields | {"confirm": token})
    assert sent.status_code == 303
    [broadcast] = sluice.broadcasts()
    assert (broadcast["local_time"], broadcast["per_hour"]) == ("09:00", 100)
    page = text_of(browser.get(sent.headers["location"]).text)
    assert f"To Customers · 09:00 in each visitor's zone on {day} · at most 100 an hour" in page


def test_the_pages_need_a_login_and_a_token_and_unknown_ids_are_404(anonymous, sluice):
    assert anonymous.get("/broadcasts").status_code == 303
    assert anonymous.get("/ui/broadcasts/1/progress").status_code == 401
    login(anonymous)
    refused = anonymous.post("/broadcasts/_new", data=NEWS | {"action": "draft"})
    assert refused.status_code == 403
    assert sluice.broadcasts() == []
    for path in ("/broadcasts/999", "/broadcasts/abc", f"/broadcasts/{2**64}"):
        answer = anonymous.get(path)
        assert answer.status_code == 404, path
    assert "There is no broadcast 999." in anonymous.get("/broadcasts/999").text
    assert anonymous.get("/ui/broadcasts/999/progress").status_code == 404
