"""The notes app's behaviour, written with Portcullis's fixtures only."""

from __future__ import annotations

from flask import Flask

from flask_portcullis.testing import ClientFactory, SentMail, TotpFactory, UserFactory


def test_notes_are_private_to_their_author(
    portcullis_user: UserFactory, portcullis_client: ClientFactory
) -> None:
    ada, bob = portcullis_user("ada"), portcullis_user("bob")
    portcullis_client(ada).post("/notes", data={"body": "secret plans of ada"})
    page = portcullis_client(bob).get("/").get_data(as_text=True)
    assert "bob's notes" in page
    assert "secret plans of ada" not in page
    assert "secret plans of ada" in portcullis_client(ada).get("/").get_data(as_text=True)


def test_the_home_page_asks_strangers_to_sign_in(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_the_display_name_heads_the_page(
    portcullis_user: UserFactory, portcullis_client: ClientFactory
) -> None:
    ada = portcullis_user("ada", display_name="Ada Lovelace")
    assert "Ada Lovelace's notes" in portcullis_client(ada).get("/").get_data(as_text=True)


def test_sign_up_asks_for_a_display_name_and_mails_a_link(
    app: Flask, portcullis_outbox: list[SentMail]
) -> None:
    client = app.test_client()
    form = {
        "username": "grace",
        "email": "grace@example.com",
        "password": "a long new password",
        "password_confirm": "a long new password",
    }
    refused = client.post("/register", data=form)
    assert refused.status_code == 422
    assert "Choose a display name." in refused.get_data(as_text=True)
    assert client.post("/register", data={**form, "display_name": "Grace H."}).status_code == 302
    assert "Grace H.'s notes" in client.get("/").get_data(as_text=True)
    (mail,) = portcullis_outbox
    assert mail.to == "grace@example.com"
    assert client.get(mail.links[0]).status_code in (200, 302)


def test_signing_out_from_the_notes_page(
    portcullis_user: UserFactory, portcullis_client: ClientFactory
) -> None:
    client = portcullis_client(portcullis_user("ada"))
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302  # back to the sign-in page


def test_two_factor_sign_in(
    app: Flask, portcullis_user: UserFactory, portcullis_totp: TotpFactory
) -> None:
    ada = portcullis_user("ada")
    portcullis_totp.enable(ada)
    client = app.test_client()
    first = client.post("/login", data={"identity": "ada", "password": ada.password})
    assert first.headers["Location"].startswith("/login/two-factor")
    second = client.post("/login/two-factor", data={"code": portcullis_totp(ada)})
    assert second.headers["Location"] == "/"
    assert "ada's notes" in client.get("/").get_data(as_text=True)


def test_an_admin_may_open_the_console(
    portcullis_user: UserFactory, portcullis_client: ClientFactory
) -> None:
    assert (
        portcullis_client(portcullis_user("root", roles=["admin"])).get("/admin/").status_code
        == 200
    )
    assert portcullis_client(portcullis_user("ada")).get("/admin/").status_code == 403
