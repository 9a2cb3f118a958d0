"""Sign in, sign up, link and re-authenticate through a sign-in provider; the connections
page. The protocol is ``oauth_client``'s; what an identity may open is
``usecases.federation``'s."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..caller import this_client
from ..decorators import login_required
from ..exceptions import (
    AccountInactive,
    Conflict,
    EmailNotVerified,
    EmailTaken,
    FieldError,
    ProviderFailed,
)
from ..federation import Identity
from ..identity import clean_email, mask_email
from ..providers import OIDC, Provider
from ..state import get_state
from ..usecases import federation
from .blueprints import bp
from .events import complete_sign_in, held_identity, hold_identity
from .feedback import render_form, show_error
from .forms import ConfirmForm, ProviderForm, ProviderSignupForm, UnlinkForm
from .fresh import fresh_login_required
from .keys import PENDING_IDENTITY, PENDING_VERIFICATION
from .login_bridge import is_fresh, mark_fresh, me
from .oauth_client import REAUTHENTICATE, finish, providers, start
from .redirects import after_login_url, safe_next
from .second_step import start_second_step

SIGN_IN, LINK = "sign-in", "link"
CONNECTIONS = "portcullis.connections"


def configured(name: str) -> Provider:
    provider = providers().get(name)
    if provider is None:
        abort(404)
    return provider


def problem(error: ProviderFailed) -> ResponseReturnValue:
    """A clear page for a provider's answer that cannot be used (never a 500)."""
    page = render_template("portcullis/provider_problem.html", message=str(error))
    return page, 502 if error.unreachable else 400


@bp.route("/login/oauth/<provider>", methods=["POST"])
def provider_start(provider: str) -> ResponseReturnValue:
    """Send the browser to the provider. POST with a CSRF token only: a sign-in another
    site starts (or finishes) in your browser would sign you in to their account."""
    kind = configured(provider).kind
    form = ProviderForm()
    if not form.validate_on_submit() or form.intent.data not in (SIGN_IN, LINK, REAUTHENTICATE):
        flash("That form expired; press the button again.", "error")
        return redirect(url_for("portcullis.login"))
    intent = form.intent.data
    if intent == SIGN_IN and current_user.is_authenticated:
        return redirect(after_login_url())
    if intent != SIGN_IN and not current_user.is_authenticated:
        return redirect(url_for("portcullis.login"))
    if intent == LINK and not is_fresh():
        return redirect(url_for("portcullis.reauthenticate", next=url_for(CONNECTIONS)))
    if intent == REAUTHENTICATE and kind != OIDC:
        # GitHub cannot be asked to sign the person in again: one click would do.
        flash("Please confirm with your password.", "error")
        return redirect(url_for("portcullis.reauthenticate"))
    try:
        return start(provider, intent, safe_next(request.args.get("next")))
    except ProviderFailed as exc:
        return problem(exc)


@bp.route("/login/oauth/<provider>/callback")
def provider_callback(provider: str) -> ResponseReturnValue:
    """The provider's answer: checked (oauth_client.finish), counted per client, then
    used for what this browser started it for."""
    configured(provider)
    try:
        identity, flow = federation.take_answer(
            get_state(), this_client(), provider, lambda: finish(provider)
        )
    except ProviderFailed as exc:
        return problem(exc)
    next_url = safe_next(str(flow.get("next") or "")) if flow.get("next") else None
    if flow.get("intent") == LINK:
        return finish_link(identity)
    if flow.get("intent") == REAUTHENTICATE:
        return finish_reauthentication(identity, next_url)
    return finish_sign_in(identity, next_url)


def finish_sign_in(identity: Identity, next_url: str | None) -> ResponseReturnValue:
    state = get_state()
    try:
        arrival = federation.arrive(state, this_client(), identity)
    except AccountInactive:
        flash("This account is deactivated. Contact the site's administrator.", "error")
        return redirect(url_for("portcullis.login"))
    except EmailNotVerified as exc:
        pending = state.accounts.get(exc.user_id)
        session[PENDING_VERIFICATION] = pending.email if pending else ""
        flash(str(exc), "error")
        return redirect(url_for("portcullis.login"))
    user = arrival.user
    if user is not None:
        if state.settings.oauth_second_factor and state.two_factor.is_enabled(user):
            return start_second_step(
                user, remember=False, next_url=next_url, provider=identity.provider
            )
        first = complete_sign_in(user, remember=False, provider=identity.provider)
        return redirect(first or next_url or url_for(state.settings.post_login_view))
    hold_identity(identity, arrival.owner)
    if arrival.owner is not None:
        return redirect(url_for("portcullis.provider_existing", provider=identity.provider))
    if not state.settings.registration:
        session.pop(PENDING_IDENTITY, None)
        label = configured(identity.provider).label
        flash(f"No account here is linked to that {label} account.", "error")
        return redirect(url_for("portcullis.login"))
    return redirect(url_for("portcullis.provider_signup", provider=identity.provider))


def finish_link(identity: Identity) -> ResponseReturnValue:
    label = configured(identity.provider).label
    if not current_user.is_authenticated:
        return redirect(url_for("portcullis.login"))
    try:
        federation.link(get_state(), this_client(), me(), identity, label)
    except Conflict as exc:
        flash(str(exc), "error")
    else:
        flash(f"{label} is linked: you can sign in with it from now on.", "success")
    return redirect(url_for(CONNECTIONS))


def finish_reauthentication(identity: Identity, next_url: str | None) -> ResponseReturnValue:
    if not current_user.is_authenticated:
        return redirect(url_for("portcullis.login"))
    linked = get_state().federation.account_of(identity)
    if linked is None or linked.id != me().id:
        label = configured(identity.provider).label
        flash(f"That {label} account is not linked to yours.", "error")
        return redirect(url_for("portcullis.reauthenticate", next=next_url))
    mark_fresh()
    return redirect(next_url or url_for("portcullis.account"))


@bp.route("/login/oauth/<provider>/signup", methods=["GET", "POST"])
def provider_signup(provider: str) -> ResponseReturnValue:
    """A new person: choose a username (the provider's suggestion filled in) and confirm
    the address. The account has no password until its owner sets one."""
    label = configured(provider).label
    if not get_state().settings.registration:
        abort(404)
    identity = held_identity()
    if identity is None or identity.provider != provider or current_user.is_authenticated:
        flash("Please start again.", "info")
        return redirect(url_for("portcullis.login"))
    form = ProviderSignupForm(data={"username": identity.username, "email": identity.email})
    if form.validate_on_submit():
        state = get_state()
        try:
            user = federation.sign_up(
                state, this_client(), identity, form.username.data or "", form.email.data or ""
            )
        except EmailTaken:  # only without required verification: see federation.sign_up
            form.email.errors = ["That address is taken: sign in to its account, or use another."]
        except FieldError as exc:
            show_error(form, exc)
        except Conflict as exc:
            session.pop(PENDING_IDENTITY, None)
            flash(str(exc), "error")
            return redirect(url_for("portcullis.login"))
        else:
            session.pop(PENDING_IDENTITY, None)
            if user is None or (
                state.settings.email_verification == "required" and not user.email_verified
            ):  # a taken address is answered exactly like a new one
                address = user.email if user is not None else clean_email(form.email.data or "")
                session[PENDING_VERIFICATION] = address
                return render_template(
                    "portcullis/check_inbox.html", reason="verify", email=address
                )
            welcome = f"Welcome, {user.username}! Your account is ready."
            complete_sign_in(user, remember=False, greeting=welcome, provider=provider)
            return redirect(url_for(state.settings.post_login_view))
    return render_form(
        "portcullis/provider_signup.html", form, label=label, vouched=identity.email_verified
    )


@bp.route("/login/oauth/<provider>/existing")
def provider_existing(provider: str) -> ResponseReturnValue:
    """The provider's verified address belongs to an account here. Its owner signs in to it
    (password, then its second factor) to link the provider; nobody else gets in by it."""
    label = configured(provider).label
    identity = held_identity()
    if identity is None or identity.provider != provider:
        return redirect(url_for("portcullis.login"))
    return render_template(
        "portcullis/provider_existing.html",
        label=label,
        email=mask_email(identity.email),
        form=ConfirmForm(),
    )


@bp.route("/login/oauth/<provider>/confirm", methods=["GET", "POST"])
@login_required
def provider_confirm(provider: str) -> ResponseReturnValue:
    """After its owner signed in: link the provider identity that found this account by its
    address? Asked, not assumed: whoever left it waiting in this browser may not be them."""
    label = configured(provider).label
    user = me()
    identity = held_identity(user)
    if identity is None or identity.provider != provider:
        return redirect(url_for(get_state().settings.post_login_view))
    form = ConfirmForm()
    if form.validate_on_submit():
        session.pop(PENDING_IDENTITY, None)
        if request.form.get("decision") != "link":
            flash(f"{label} was not linked.", "info")
            return redirect(url_for(get_state().settings.post_login_view))
        try:
            federation.link(get_state(), this_client(), user, identity, label)
        except Conflict as exc:
            flash(str(exc), "error")
        else:
            flash(f"{label} is linked: you can sign in with it from now on.", "success")
        return redirect(url_for(CONNECTIONS))
    return render_template(
        "portcullis/provider_confirm.html",
        label=label,
        email=identity.email,
        form=form,
    )


@bp.route("/login/oauth/cancel", methods=["POST"])
def provider_cancel() -> ResponseReturnValue:
    if ConfirmForm().validate_on_submit():
        session.pop(PENDING_IDENTITY, None)
        flash("Nothing was linked.", "info")
    return redirect(url_for("portcullis.login"))


@bp.route("/account/connections", methods=["GET", "POST"])
@fresh_login_required
def connections() -> ResponseReturnValue:
    """The providers linked to the account: link another, unlink one (never the last way
    in). Re-authentication first, as for every page that changes how one signs in."""
    state, user = get_state(), me()
    form = UnlinkForm()
    if form.validate_on_submit():
        provider = configured(form.provider.data or "")
        try:
            federation.unlink(state, this_client(), user, provider.name, provider.label)
        except Conflict as exc:
            flash(str(exc), "error")
        else:
            flash(f"{provider.label} is unlinked.", "success")
        return redirect(url_for(CONNECTIONS))
    links = {link.provider: link for link in state.federation.links_of(user.id)}
    return render_template(
        "portcullis/connections.html",
        providers=list(providers().values()),
        links=links,
        form=ProviderForm(intent=LINK),
        unlink_form=form,
    )
