"""The domain core of merchant-notify: the hook catalogue, signing, transports, dispatch and jobs.

Nothing in this package defines a Flask view; blueprints, the API, the CLI and the worker call it.
"""
