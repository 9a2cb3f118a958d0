"""The two blueprints: accounts at the site root, the admin console under /admin."""

from __future__ import annotations

from flask import Blueprint

# Rooted at the package so templates/ and static/ sit beside the code.
bp = Blueprint(
    "portcullis",
    "flask_portcullis",
    template_folder="templates",
    static_folder="static",
    static_url_path="/portcullis/static",
)
admin_bp = Blueprint("portcullis_admin", "flask_portcullis", url_prefix="/admin")
