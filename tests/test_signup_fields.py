"""A host's own sign-up fields (``Portcullis(register_form=...)``): asked on the page, taken
by the JSON API, validated by the form's own validators, stored on the host's user columns;
never Portcullis's columns, never on another app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask, render_template_string
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse
from wtforms import (
    BooleanField,
    DecimalField,
    Field,
    FloatField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    URLField,
)
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from flask_portcullis import ConfigurationError, Portcullis, RegisterForm, UserMixin, get_state
from flask_portcullis.api.signup import register_body
from flask_portcullis.mail import Message
from flask_portcullis.signup import SignupFields

from .conftest import FAST_HASH, GENEROUS_LIMITS, PASSWORD, make_app, submit, text
from .fuzzing import CHECKS, FUZZING
from .fuzzing import _node_id_for_schemathesis as _node_id_for_schemathesis

API = "/api/v1"


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Member(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "members"
    display_name: Mapped[str | None] = mapped_column(String(80), default=None)


class SignupForm(RegisterForm):
    display_name = StringField(
        "Display name",
        validators=[DataRequired("Choose a display name."), Length(max=80)],
        description="Shown beside your posts.",
    )

    def validate_display_name(self, field: Field) -> None:
        if "portcullis" in str(field.data).casefold():
            raise ValidationError("That name is reserved.")


class Sent:
    """A mail sender that keeps the messages (the tests here read none of them)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.messages.append(message)


portcullis = Portcullis(db=db, user_model=Member, register_form=SignupForm, mail_sender=Sent())

HostFactory = Callable[..., Flask]


def make_host(
    database: Path, *, sql: SQLAlchemy = db, extension: Portcullis = portcullis, **config: Any
) -> Flask:
    """A host app with the display_name field, on its own SQLite file."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="signup-secret-" + "z" * 32,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}",
        TESTING=True,
        **FAST_HASH,
        **GENEROUS_LIMITS,
        **config,
    )
    sql.init_app(app)
    extension.init_app(app)
    with app.app_context():
        sql.create_all()
    return app


def dispose(app: Flask) -> None:
    with app.app_context():
        get_state(app).db.engine.dispose()


@pytest.fixture
def build_host(tmp_path: Path) -> Iterator[HostFactory]:
    """Make host apps (``make_host``), each on its own SQLite file."""
    apps: list[Flask] = []

    def factory(**config: Any) -> Flask:
        apps.append(make_host(tmp_path / f"host{len(apps)}.db", **config))
        return apps[-1]

    yield factory
    for app in apps:
        dispose(app)


@pytest.fixture
def host(build_host: HostFactory) -> Flask:
    return build_host()


def sign_up(app: Flask, **fields: str) -> TestResponse:
    data = {
        "username": "ada",
        "email": "ada@example.com",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        **fields,
    }
    return submit(app.test_client(), "/register", data)


def api_sign_up(app: Flask, **fields: Any) -> TestResponse:
    body = {"username": "ada", "email": "ada@example.com", "password": PASSWORD, **fields}
    return app.test_client().post(f"{API}/register", json=body)


def members(app: Flask) -> list[tuple[str, str | None]]:
    with app.app_context():
        rows = db.session.execute(select(Member.username, Member.display_name)).all()
        return [(row.username, row.display_name) for row in rows]


def field_errors(response: TestResponse) -> list[dict[str, str]]:
    body = response.get_json()
    assert isinstance(body, dict), text(response)
    errors: list[dict[str, str]] = body["errors"]
    return errors


# -- the page ----------------------------------------------------------------------------------


def test_the_page_asks_for_the_hosts_field_after_its_own(host: Flask) -> None:
    page = text(host.test_client().get("/register"))
    assert '<label for="display_name">Display name</label>' in page
    assert '<p class="hint" id="display_name-hint">Shown beside your posts.</p>' in page
    field = page[page.index('id="display_name" name="display_name"') :].split(">", 1)[0]
    assert 'maxlength="80"' in field
    assert " required" in field
    assert 'aria-describedby="display_name-hint"' in field
    assert page.index('name="password_confirm"') < page.index('name="display_name"')
    assert page.index('name="display_name"') < page.index('<button type="submit"')


def test_a_sign_up_stores_the_field_on_the_users_row(host: Flask) -> None:
    response = sign_up(host, display_name="Ada Lovelace")
    assert response.status_code == 302, text(response)
    assert members(host) == [("ada", "Ada Lovelace")]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Choose a display name."),
        ({"display_name": ""}, "Choose a display name."),
        ({"display_name": "x" * 81}, "Field cannot be longer than 80 characters."),
        ({"display_name": "The Portcullis Team"}, "That name is reserved."),  # inline validator
    ],
)
def test_a_missing_or_invalid_value_is_an_error_on_its_field_and_writes_nothing(
    host: Flask, fields: dict[str, str], message: str
) -> None:
    response = sign_up(host, **fields)
    assert response.status_code == 422
    page = text(response)
    errors = page[page.index('<ul class="errors" id="display_name-errors">') :]
    assert errors.split("</ul>", 1)[0].count("<li>") == 1
    assert f"<li>{message}</li>" in errors.split("</ul>", 1)[0]
    assert 'aria-invalid="true"' in page
    assert members(host) == []


# -- the JSON API ------------------------------------------------------------------------------


def test_the_api_accepts_the_field_and_stores_it(host: Flask) -> None:
    response = api_sign_up(host, display_name="Ada Lovelace")
    assert response.status_code == 201, text(response)
    assert members(host) == [("ada", "Ada Lovelace")]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Field required"),
        ({"display_name": ""}, "Choose a display name."),  # the form's own validator
        ({"display_name": "x" * 81}, "String should have at most 80 characters"),
        ({"display_name": "The Portcullis Team"}, "That name is reserved."),
        ({"display_name": 42}, "Input should be a valid string"),
        ({"display_name": None}, "Input should be a valid string"),
    ],
)
def test_the_api_refuses_a_missing_or_invalid_value_naming_the_field(
    host: Flask, fields: dict[str, Any], message: str
) -> None:
    response = api_sign_up(host, **fields)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field_errors(response) == [{"field": "display_name", "message": message}]
    assert members(host) == []


def test_the_api_still_refuses_unknown_fields(host: Flask) -> None:
    response = api_sign_up(host, display_name="Ada", nickname="ada")
    assert response.status_code == 422
    assert [error["field"] for error in field_errors(response)] == ["nickname"]
    assert members(host) == []


def test_the_document_lists_the_field_for_its_app_only(
    build_host: HostFactory, tmp_path: Path
) -> None:
    host = build_host()
    default = make_app(tmp_path / "default")

    def register_schema(app: Flask) -> dict[str, Any]:
        document = app.test_client().get(f"{API}/openapi.json").get_json()
        schema: dict[str, Any] = document["components"]["schemas"]["Register"]
        return schema

    for app in (host, default, host):  # one process, one blueprint: asked in turn
        schema = register_schema(app)
        if app is host:
            assert schema["properties"]["display_name"] == {
                "type": "string",
                "maxLength": 80,
                "title": "Display name",
                "description": "Shown beside your posts.",
            }
            assert "display_name" in schema["required"]
        else:
            assert "display_name" not in schema["properties"]
            assert schema["required"] == ["username", "email", "password"]
        assert schema["additionalProperties"] is False
    dispose(default)


# -- per app, and never Portcullis's own columns -------------------------------------------


def test_a_default_app_in_the_same_process_keeps_the_plain_form(
    host: Flask, tmp_path: Path
) -> None:
    default = make_app(tmp_path / "default")
    assert 'name="display_name"' in text(host.test_client().get("/register"))
    assert 'name="display_name"' not in text(default.test_client().get("/register"))
    refused = api_sign_up(default, display_name="Ada Lovelace")
    assert refused.status_code == 422
    assert [error["field"] for error in field_errors(refused)] == ["display_name"]
    assert api_sign_up(default).status_code == 201
    assert sign_up(default, username="grace", email="grace@example.com").status_code == 302
    dispose(default)


def form_with(name: str, field: Any) -> type[RegisterForm]:
    return type("BadForm", (RegisterForm,), {name: field})


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (form_with("active", BooleanField("Active")), "'active' names a column Portcullis sets"),
        (form_with("password_hash", StringField()), "'password_hash' names a column Portcullis"),
        (form_with("email_verified_at", StringField()), "'email_verified_at' names a column"),
        (form_with("username_key", StringField()), "'username_key' names a column Portcullis"),
        (form_with("is_admin", BooleanField()), "'is_admin' is not a column of Member: add"),
        (form_with("roles", StringField()), "'roles' is not a column of Member"),
        (form_with("submit", SubmitField("Sign up")), "draws its own button"),
        (form_with("tags", SelectMultipleField()), "SelectMultipleField, which sign-up cannot"),
        (form_with("username", None), "removes the sign-up field"),
        (type("Plain", (), {}), "not a form class based on flask_portcullis.RegisterForm"),
    ],
)
def test_start_up_refuses_fields_sign_up_must_not_or_cannot_set(
    form: type[RegisterForm], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Portcullis(db=SQLAlchemy(), user_model=Member, register_form=form)


def test_start_up_refuses_a_field_the_built_in_user_has_no_column_for() -> None:
    with pytest.raises(ConfigurationError, match="not a column of the built-in User: pass"):
        Portcullis(db=SQLAlchemy(), register_form=SignupForm)


def test_the_service_never_sets_portcullis_columns_from_extra_values(host: Flask) -> None:
    with host.app_context():
        accounts = get_state(host).accounts
        for extra in ({"active": False}, {"email_verified_at": None}, {"is_admin": True}):
            with pytest.raises(ConfigurationError):
                accounts.register("eve", "eve@example.com", PASSWORD, extra=extra)
        assert db.session.scalar(select(func.count()).select_from(Member)) == 0
        user = accounts.register("ada", "ada@example.com", PASSWORD, extra={"display_name": "A"})
        assert (user.display_name, user.active) == ("A", True)


# -- no enumeration ----------------------------------------------------------------------------


def test_a_taken_address_still_answers_like_a_new_one(build_host: HostFactory) -> None:
    host = build_host(PORTCULLIS_EMAIL_VERIFICATION="required")
    fresh = api_sign_up(host, display_name="Ada")
    taken = api_sign_up(host, username="mallory", email="ADA@example.com", display_name="M")
    assert fresh.status_code == taken.status_code == 202
    assert fresh.get_data() == taken.get_data()
    page = sign_up(host, username="eve", email="ada@EXAMPLE.com", display_name="Eve")
    assert page.status_code == 200
    assert "Check your inbox" in text(page)
    assert members(host) == [("ada", "Ada")]


# -- the JSON types of the API -------------------------------------------------------------


class EveryKindForm(RegisterForm):
    note = TextAreaField("Note")
    website = URLField("Website", validators=[InputRequired(), Length(max=200)])
    age = IntegerField("Age", validators=[Optional(), NumberRange(min=0)])
    height = DecimalField("Height")
    weight = FloatField("Weight")
    terms = BooleanField("I agree", validators=[DataRequired()])
    plan = SelectField("Plan", choices=[SelectChoice("free"), SelectChoice("team")])
    size = RadioField("Size", choices=[SelectChoice(36), SelectChoice(38)], coerce=int)


def test_each_field_type_has_its_json_type(host: Flask) -> None:
    names = ("note", "website", "age", "height", "weight", "terms", "plan", "size")
    with host.test_request_context():
        body = register_body(SignupFields(EveryKindForm, names))
    schema = body.model_json_schema()
    properties = {name: schema["properties"][name] for name in names}
    assert properties == {
        "note": {"type": "string", "maxLength": 1024, "title": "Note"},
        "website": {"type": "string", "maxLength": 200, "title": "Website"},
        "age": {"type": "integer", "title": "Age"},
        "height": {"type": "number", "title": "Height"},
        "weight": {"type": "number", "title": "Weight"},
        "terms": {"type": "boolean", "title": "I agree"},
        "plan": {"type": "string", "enum": ["free", "team"], "title": "Plan"},
        "size": {"type": "integer", "enum": [36, 38], "title": "Size"},
    }
    # Required: DataRequired or InputRequired, and a select (it refuses no choice).
    assert set(schema["required"]) - {"username", "email", "password"} == {
        "website",
        "terms",
        "plan",
        "size",
    }
    assert schema["additionalProperties"] is False


def test_a_select_without_choices_is_a_configuration_error(host: Flask) -> None:
    class NoChoices(RegisterForm):
        display_name = SelectField("Display name")

    with host.test_request_context(), pytest.raises(ConfigurationError, match="no choices"):
        register_body(SignupFields(NoChoices, ("display_name",)))


def test_the_field_macro_draws_a_hosts_checkbox_and_select_with_their_errors(host: Flask) -> None:
    macro = '{% from "portcullis/_macros.html" import field %}{{ field(f, hint="Read them.") }}'
    with host.test_request_context():
        form = EveryKindForm(formdata=MultiDict(), meta={"csrf": False})
        assert not form.terms.validate(form)
        checkbox = render_template_string(macro, f=form.terms)
        select = render_template_string(macro, f=form.plan)
    assert 'required aria-invalid="true" aria-describedby="terms-hint terms-errors"' in checkbox
    assert '<p class="hint" id="terms-hint">Read them.</p>' in checkbox
    assert "<li>This field is required.</li>" in checkbox
    assert "required" not in select.split("<option", 1)[0]  # optional: no required="None"


# -- render_kw: a host field's own attributes, under the macro's ----------------------------


class HintedForm(RegisterForm):
    display_name = StringField(
        "Display name",
        validators=[DataRequired("Choose a display name."), Length(max=80)],
        description="Shown beside your posts.",
        render_kw={
            "placeholder": 'Ada "the Countess" <Lovelace>',
            "autocomplete": "nickname",
            "inputmode": "text",
            "class_": "wide",
            "data_kind": "display name",
            "spellcheck": False,  # False and None: left out, as WTForms does
            "title": None,
            # The macro's own attributes: never taken from render_kw.
            "id": "hijacked",
            "name": "other_name",
            "type": "hidden",
            "value": "preset",
            "maxlength": 5,
            "aria-describedby": "nowhere",
            "aria_invalid": "false",
        },
    )


class HintedBase(DeclarativeBase):
    pass


hinted_db = SQLAlchemy(model_class=HintedBase)  # its own models: one Portcullis per db


class HintedMember(UserMixin, hinted_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "members"
    display_name: Mapped[str | None] = mapped_column(String(80), default=None)


hinted = Portcullis(
    db=hinted_db, user_model=HintedMember, register_form=HintedForm, mail_sender=Sent()
)


def input_tag(page: str, name: str) -> str:
    """The whole <input> tag of the field ``name`` (values are escaped, so no bare ">")."""
    start = page.rindex("<input", 0, page.index(f'name="{name}"'))
    return page[start : page.index(">", start) + 1]


@pytest.fixture
def hinted_host(tmp_path: Path) -> Iterator[Flask]:
    app = make_host(tmp_path / "hinted.db", sql=hinted_db, extension=hinted)
    yield app
    dispose(app)


def test_a_hosts_render_kw_reaches_the_input_escaped(hinted_host: Flask) -> None:
    page = text(hinted_host.test_client().get("/register"))
    tag = input_tag(page, "display_name")
    assert tag.startswith('<input type="text" id="display_name" name="display_name" ')
    assert ' placeholder="Ada &#34;the Countess&#34; &lt;Lovelace&gt;"' in tag
    assert ' autocomplete="nickname"' in tag
    assert ' inputmode="text"' in tag
    assert ' class="wide"' in tag
    assert ' data-kind="display name"' in tag
    assert "spellcheck" not in tag
    assert "title" not in tag
    assert '<label for="display_name">Display name</label>' in page


def test_render_kw_never_overrides_the_macros_own_attributes(hinted_host: Flask) -> None:
    page = text(hinted_host.test_client().get("/register"))
    tag = input_tag(page, "display_name")
    for attribute in ("type", "id", "name", "maxlength", "aria-describedby"):
        assert tag.count(f" {attribute}=") == 1, (attribute, tag)
    assert 'maxlength="80"' in tag
    assert 'aria-describedby="display_name-hint"' in tag
    assert "hijacked" not in page
    assert "other_name" not in page
    assert "preset" not in page
    assert "nowhere" not in page
    assert "aria-invalid" not in tag  # nothing is wrong yet, whatever render_kw says

    refused = sign_up(hinted_host, display_name="")
    assert refused.status_code == 422
    tag = input_tag(text(refused), "display_name")
    assert tag.count(" aria-invalid=") == 1
    assert 'aria-invalid="true"' in tag
    assert 'aria-describedby="display_name-hint display_name-errors"' in tag
    assert tag.count(" aria-describedby=") == 1
    assert ' placeholder="Ada &#34;the Countess&#34; &lt;Lovelace&gt;"' in tag
    assert sign_up(hinted_host, display_name="Ada").status_code == 302  # the name is its own


class KwEveryKindForm(RegisterForm):
    nickname = StringField(
        "Nickname", render_kw={"autocomplete": "nickname", "inputmode": "numeric"}
    )
    terms = BooleanField(
        "I agree",
        validators=[DataRequired()],
        render_kw={"class": "tick", "checked": True, "value": "n", "aria-describedby": "x"},
    )
    plan = SelectField(
        "Plan",
        choices=[SelectChoice("free"), SelectChoice("team")],
        render_kw={"class_": "picker", "id": "hijacked", "name": "other", "aria_label": "Plan"},
    )
    note = TextAreaField("Note", render_kw={"rows": 3, "placeholder": "<b>hi</b>", "value": "x"})


def test_the_field_macro_passes_render_kw_on_every_kind_of_field(host: Flask) -> None:
    macro = (
        '{% from "portcullis/_macros.html" import field %}'
        '{{ field(f, hint="Read them.", autocomplete=autocomplete) }}'
    )
    with host.test_request_context():
        form = KwEveryKindForm(formdata=MultiDict(), meta={"csrf": False})
        assert not form.terms.validate(form)
        nickname = render_template_string(macro, f=form.nickname, autocomplete=None)
        page_wins = render_template_string(macro, f=form.nickname, autocomplete="off")
        checkbox = render_template_string(macro, f=form.terms, autocomplete=None)
        select = render_template_string(macro, f=form.plan, autocomplete=None)
        note = render_template_string(macro, f=form.note, autocomplete=None)
    assert 'autocomplete="nickname"' in nickname
    assert 'inputmode="numeric"' in nickname
    # The page's own autocomplete wins over render_kw's.
    assert 'autocomplete="off"' in page_wins
    assert input_tag(page_wins, "nickname").count("autocomplete=") == 1
    # A checkbox: render_kw's class, never its checked, value or aria-describedby.
    box = input_tag(checkbox, "terms")
    assert 'class="tick"' in box
    assert 'value="y"' in box
    assert 'value="n"' not in box
    assert " checked" not in box
    assert 'aria-describedby="terms-hint terms-errors"' in box
    assert box.count("aria-describedby") == 1
    # A select drawn by WTForms: the field's own id and name, render_kw's class and label.
    opening = select.split("<option", 1)[0]
    assert 'id="plan"' in opening
    assert 'name="plan"' in opening
    assert "hijacked" not in select
    assert 'name="other"' not in select
    assert 'class="picker"' in opening
    assert 'aria-label="Plan"' in opening
    assert 'aria-describedby="plan-hint"' in opening
    # A text area: its attributes escaped, no value attribute.
    assert 'rows="3"' in note
    assert 'placeholder="&lt;b&gt;hi&lt;/b&gt;"' in note
    assert 'value="x"' not in note


def test_a_render_kw_key_that_is_no_attribute_name_is_refused(host: Flask) -> None:
    class Broken(RegisterForm):
        nickname = StringField("Nickname", render_kw={'x" onfocus="alert(1)': "y"})

    macro = '{% from "portcullis/_macros.html" import field %}{{ field(f) }}'
    with host.test_request_context():
        form = Broken(formdata=None, meta={"csrf": False})
        with pytest.raises(ValueError, match="not an HTML attribute"):
            render_template_string(macro, f=form.nickname)


# -- fuzzed: POST /register of the host answers as its document says ------------------------


@pytest.fixture(scope="module")
def fuzzed_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    app = make_host(tmp_path_factory.mktemp("signup-fuzz") / "host.db")
    yield app
    dispose(app)


@pytest.fixture(scope="module")
def register_schema(fuzzed_host: Flask) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {"generation": {"mode": "all", "deterministic": True, "database": "none"}}
    )
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", fuzzed_host, config=config)
    return schema.include(path="/register")


fuzzed = schemathesis.pytest.from_fixture("register_schema")


@fuzzed.parametrize()
@FUZZING
def test_the_hosts_register_answers_as_documented(
    case: schemathesis.Case[Any], fuzzed_host: Flask
) -> None:
    case.call_and_validate(checks=CHECKS)
