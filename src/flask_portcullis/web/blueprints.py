"""The two blueprints: accounts at the site root, the admin console under /admin."""

from __future__ import annotations

from flask import Blueprint, Response, request

# Rooted at the package so templates/ and static/ sit beside the code.
bp = Blueprint(
    "portcullis",
    "flask_portcullis",
    template_folder="templates",
    static_folder="static",
    static_url_path="/portcullis/static",
)
admin_bp = Blueprint("portcullis_admin", "flask_portcullis", url_prefix="/admin")


@bp.after_request
@admin_bp.after_request
def no_store(response: Response) -> Response:
    # Account pages show personal data: keep them out of shared caches (ASVS 8.2.1).
    if request.endpoint != "portcullis.static" and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response
