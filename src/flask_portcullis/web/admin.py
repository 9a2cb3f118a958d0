"""The admin console (role ``admin``): for now, the list of users."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from ..decorators import roles_required
from ..rbac import ADMIN_ROLE
from ..state import get_state
from .blueprints import admin_bp

PAGE_SIZE = 50
MAX_PAGE = 100_000  # keeps the OFFSET within every database's integer range


@admin_bp.route("/")
@roles_required(ADMIN_ROLE)
def users() -> ResponseReturnValue:
    search = request.args.get("q", "")[:254]
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)
    rows = get_state().accounts.search(search, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    more = len(rows) == PAGE_SIZE
    return render_template(
        "portcullis/admin/users.html", users=rows, q=search, page=page, more=more
    )
