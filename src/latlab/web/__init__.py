"""The dashboard: server-rendered pages under ``/ui/`` over the public v1 API and its feeds.

    pages.py     the routes (``/ui/``, ``/ui/experiments/{id}``, ``/ui/login``; ``/`` from a
                 browser), their templates and the security headers
    assets.py    where the browser libraries are (npm packages, never a CDN) and our own files
    templates/   Jinja2 pages
    static/      our ES modules and stylesheet (linted by Biome in ``make lint``)

The pages hold no data of their own: their scripts read the same ``/api/v1`` routes and SSE
feeds a user can, so whatever the dashboard shows, the API answers too.
"""
