"""The web console: a small front end served by the gateway at ``/``.

Plain ES modules and one CSS file under ``static/``, no bundler and no build step. The page
uses only the public HTTP API with the token the user types (kept in the tab's session
storage). ``assets`` gives every file a content-hashed URL, served with a year-long cache.
"""
