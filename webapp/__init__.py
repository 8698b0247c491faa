"""The Django project: settings, ASGI entry point and the apps (accounts, datasets, basemodels, runs)."""
