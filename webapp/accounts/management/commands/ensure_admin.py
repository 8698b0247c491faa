"""Create the admin user from ADMIN_USERNAME / ADMIN_PASSWORD if it does not exist yet."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a superuser from ADMIN_USERNAME/ADMIN_PASSWORD (a password is printed once if unset)."

    def handle(self, *args: object, **options: object) -> None:
        User = get_user_model()
        username = os.environ.get("ADMIN_USERNAME", "admin")
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"admin user '{username}' exists (password unchanged)")
            return
        password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        shown = password if "ADMIN_PASSWORD" not in os.environ else "(from ADMIN_PASSWORD)"
        self.stdout.write(f"created admin user '{username}' with password {shown}")
