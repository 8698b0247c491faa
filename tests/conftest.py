"""Shared fixtures: fast password hashing, users (owner, teammate, outsider), temp roots."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fast_hasher_and_tmp_roots(settings, tmp_path):
    """Fast hashing in tests, and every run/upload/prepared folder under a temp dir."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.RUNS_ROOT = tmp_path / "runs"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PREPARED_ROOT = tmp_path / "prepared"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-pass-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-pass-123")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("staff", password="staff-pass-123", is_staff=True)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client
