"""The floor: one Flask route and nothing else, the 1.00 every ratio is measured against."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index() -> str:
    return "Hello, World!"
