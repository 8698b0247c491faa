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


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, plus: end stray sessions before it is dropped.

    A live-server request thread can die holding its connection; PostgreSQL then refuses
    to drop the test database ("being accessed by other users") and it is left behind.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random-weight tiny Llama and its BPE tokenizer, built once per test session."""
    from trainer.demo import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def demo_corpus(tmp_path):
    """A small JSONL corpus of standard-library docstrings (about 500 documents)."""
    import itertools

    from trainer.demo import demo_texts, write_jsonl

    return write_jsonl(tmp_path / "corpus.jsonl", itertools.islice(demo_texts(), 500))
