"""The example app `make run` deploys from git: a Flask app served by gunicorn (Procfile)."""

import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return (
        "<!doctype html><title>Hello from shoal</title><h1>Hello from shoal</h1>"
        "<p>Built from git with the Python buildpack and served by an instance in its own "
        f"sandbox ({os.environ.get('KOYEB_INSTANCE_ID', '?')[:8]}), deployed by "
        "<code>make run</code>.</p>"
    )
