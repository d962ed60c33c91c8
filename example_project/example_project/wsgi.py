"""WSGI entry point of the example shop (any WSGI server; one process, as the emulator lives in it)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

application = get_wsgi_application()
