"""Use cases: each way into the product's rules written once, for every adapter.

A use case does the whole of one thing a user (or operator) asks for: the
state change through the services, the audit row (and so its signal) and
the mail. The pages, the JSON API and the CLI call it and only translate:
form or JSON in; page, redirect, flash or problem+json out. What a use case
needs to know about the request (who asks, from where, when) comes in as a
:class:`~flask_portcullis.usecases.client.Client`, never from request
globals, so a new way in (a provider's callback, an admin action) calls the
same function.
"""
