"""A person may decline the email permission in Facebook's dialog.

Facebook remembers it: later dialogs do not ask again, unless the app sends
`auth_type=rerequest` ("Manually Build a Login Flow", Re-asking for Declined Permissions).
The account page offers "Share your email" for a Facebook identity without one: a link to
`/login/facebook?rerequest=1`, which the adapter (Facebook's only) turns into that parameter.
"""

from __future__ import annotations

import html

import pytest
import requests
from conftest import Browser, query
from test_facebook import dialog, graph_get, permissions_at_facebook
from test_facebook import user_token as mock_user_token
from test_tokens import connection

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES


def share_email_link(browser: Browser) -> str | None:
    """The href of the account page's "Share your email" link, if it offers one."""
    item = connection(browser.get("/account").text, "facebook")
    if "Share your email" not in item:
        return None
    return html.unescape(item.split('class="button small share-email" href="', 1)[1].split('"')[0])


# --- the mock ---------------------------------------------------------------------------


def test_mock_remembers_a_declined_email_until_rerequest(mock) -> None:
    mock.control.switch("facebook", decline="email")
    first = dialog(mock, return_scopes="true")
    assert (first["granted_scopes"], first["denied_scopes"]) == ("public_profile", "email")
    assert permissions_at_facebook(mock) == {"public_profile": "granted", "email": "declined"}
    token = mock_user_token(mock)
    assert "email" not in graph_get(mock, "me?fields=id,email", token).json()
    listed = graph_get(mock, "me/permissions", token).json()["data"]
    assert {"permission": "email", "status": "declined"} in listed

    mock.control.switch("facebook", decline=None)  # would share it now, if asked...
    again = dialog(mock, return_scopes="true")
    assert again["denied_scopes"] == "email"  # ...but a declined permission is not asked
    rerequested = dialog(mock, return_scopes="true", auth_type="rerequest")
    assert rerequested["granted_scopes"] == "email,public_profile"
    assert "denied_scopes" not in rerequested  # `denied_scopes=` (empty) is dropped by query()
    token = mock_user_token(mock)
    assert graph_get(mock, "me?fields=id,email", token).json()["email"] == "ada@example.com"


def test_mock_decline_switch_is_validated(mock) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        mock.control.switch("facebook", decline="public_profile")


def test_mock_consent_page_lets_the_person_untick_the_email(mock) -> None:
    mock.control.switch("facebook", interactive=True)
    env = mock.app_env()
    url = f"{env['FACEBOOK_URL']}/{env['FACEBOOK_GRAPH_VERSION']}/dialog/oauth"
    params = {
        "client_id": env["FACEBOOK_CLIENT_ID"],
        "redirect_uri": mock.settings.callback("facebook"),
        "scope": "email,public_profile",
        "return_scopes": "true",
    }
    page = requests.get(url, params=params, timeout=10).text
    assert 'name="share" value="email" checked' in page
    # The form posts back without `share`: the person unticked the box.
    answer = requests.post(
        url,
        params=params,
        data={"decision": "approve", "user": "ada"},
        allow_redirects=False,
        timeout=10,
    )
    assert query(answer.headers["Location"])["denied_scopes"] == "email"


# --- the app ------------------------------------------------------------------------------


def test_a_declined_email_can_be_shared_later_from_the_account_page(browser, mock) -> None:
    mock.control.switch("facebook", decline="email")
    assert browser.login("facebook").status_code == 200
    assert browser.identity()["email"] is None
    link = share_email_link(browser)
    assert link is not None
    assert query(link) == {"rerequest": "1", "next": "/account"}

    mock.control.switch("facebook", decline=None)
    browser.login("facebook")  # an ordinary sign-in: Facebook does not ask again
    assert browser.identity()["email"] is None

    start = browser.get(link)
    assert start.status_code == 302
    assert query(start.headers["Location"])["auth_type"] == "rerequest"
    final = browser.follow(start)
    assert final.status_code == 200 and final.url.endswith("/account")
    assert browser.identity()["email"] == "ada@example.com"
    assert share_email_link(browser) is None


def test_no_share_link_when_facebook_gave_the_email(browser, mock) -> None:
    browser.login("facebook")
    assert browser.identity()["email"] == "ada@example.com"
    assert share_email_link(browser) is None


def test_an_ordinary_sign_in_does_not_rerequest(browser, mock) -> None:
    location = browser.get("/login/facebook").headers["Location"]
    assert "auth_type" not in query(location)


@pytest.mark.parametrize("name", [p for p in PROVIDER_CLASSES if p != "facebook"])
def test_only_facebook_turns_the_flag_into_auth_type(browser, mock, name) -> None:
    location = browser.get(f"/login/{name}", params={"rerequest": "1"}).headers["Location"]
    assert "auth_type" not in query(location)
