"""What `curl -d` sends (a JSON body labelled as a form) is read as JSON; other media types get 415."""

from __future__ import annotations

from tests.e2e.conftest import Api


def test_a_form_labelled_json_body_creates_the_task(api: Api) -> None:
    answer = api.session.post(
        f"{api.base}/tasks",
        data='{"type": "sleep", "input": {"seconds": 0}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["Location"] == f"/tasks/{answer.json()['id']}"


def test_a_body_of_another_media_type_is_refused_with_415(api: Api) -> None:
    answer = api.session.post(
        f"{api.base}/tasks", data="<task/>", headers={"Content-Type": "application/xml"}, timeout=30
    )
    assert answer.status_code == 415
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.json()["status"] == 415
